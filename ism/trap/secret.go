package trap

import (
	"unsafe"

	"github.com/ismgw/ism/ipsec"
)

// aliasString returns a string that shares k's memory, for gosnmp, which
// takes communities and passphrases as strings: zeroing k wipes the string
// too, which a copy would not allow. The string must not be used after k is
// zeroed.
func aliasString(k ipsec.Key) string {
	if len(k) == 0 {
		return ""
	}
	return unsafe.String(&k[0], len(k))
}
