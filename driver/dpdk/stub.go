//go:build !(dpdk && cgo)

package dpdk

import (
	"fmt"

	"github.com/ismgw/ism/driver"
)

// Name is the driver's registry name.
const Name = "dpdk"

func init() {
	driver.Register(Name, func(driver.Config) (driver.Driver, error) {
		return nil, fmt.Errorf("%w: dpdk: build with -tags dpdk and cgo against libdpdk 22.11", driver.ErrNotBuilt)
	})
}
