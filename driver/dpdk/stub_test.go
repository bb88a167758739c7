//go:build !(dpdk && cgo)

package dpdk

import (
	"errors"
	"testing"

	"github.com/ismgw/ism/driver"
)

func TestNotBuilt(t *testing.T) {
	_, err := driver.Open(Name, driver.Config{})
	if !errors.Is(err, driver.ErrNotBuilt) {
		t.Fatalf("Open without the dpdk tag: %v, want ErrNotBuilt", err)
	}
}
