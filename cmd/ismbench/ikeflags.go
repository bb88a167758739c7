package main

import (
	"flag"

	"github.com/ismgw/ism/bench"
)

// ikeFlags adds the phase 1 proposal's flags to fs and returns a function
// that reads them after parsing.
func ikeFlags(fs *flag.FlagSet) func() bench.IKE {
	enc := fs.String("ike-encryption", bench.DefaultIKE.Encryption, "IKE SA cipher: des, 3des, aes128, aes192, aes256")
	hash := fs.String("ike-hash", bench.DefaultIKE.Hash, "IKE SA hash: md5, sha, sha256")
	group := fs.Int("group", bench.DefaultIKE.Group, "IKE Diffie-Hellman group: 1, 2, 5, 14, 15, 16, 19, 20, 21")
	return func() bench.IKE { return bench.IKE{Encryption: *enc, Hash: *hash, Group: *group} }
}
