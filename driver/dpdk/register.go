//go:build dpdk && cgo

package dpdk

import "github.com/ismgw/ism/driver"

func init() {
	driver.Register(Name, func(c driver.Config) (driver.Driver, error) {
		d, err := Open(c)
		if err != nil {
			return nil, err
		}
		return d, nil
	})
}
