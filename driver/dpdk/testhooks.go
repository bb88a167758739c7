//go:build dpdk && cgo

package dpdk

/*
#include "cdpdk.h"
*/
import "C"

// stopDevice stops a device under the driver's feet, as a failing device
// would stop; for fault tests.
func (d *Driver) stopDevice(name string) bool {
	for _, dv := range d.devs {
		if dv.name == name {
			C.ism_dev_stop(C.uint8_t(dv.id))
			return true
		}
	}
	return false
}
