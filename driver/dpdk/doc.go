// Package dpdk is ISM's driver for the DPDK cryptodev API (the Data Plane
// Development Kit's symmetric crypto device library, DPDK 22.11): AES-GCM,
// ChaCha20-Poly1305 and the CBC/HMAC transforms of package transform run on
// DPDK crypto devices under the lookaside crypto action, with packets in
// DPDK mbufs.
//
// # Build
//
// The driver is cgo against the system's libdpdk found by pkg-config
// (Debian: apt-get install dpdk dpdk-dev libdpdk-dev libipsec-mb1
// pkg-config) and is built only with the build tag dpdk:
//
//	go build -tags dpdk ./...
//	go test -tags dpdk ./driver/dpdk/...
//
// Without the tag, or without cgo, the package still registers the name
// "dpdk", and opening it fails with driver.ErrNotBuilt. The fast path of
// DPDK (rte_cryptodev_enqueue_burst, rte_crypto_op_bulk_alloc, ...) is
// static inline; cdpdk.c wraps it so that Go makes one cgo call per burst
// to enqueue and one to dequeue.
//
// # EAL
//
// EAL starts once per process, at the first Open. driver.Config.Params
// configures it:
//
//   - "eal": the whole EAL argument list, whitespace separated; it replaces
//     the defaults below (first Open only: EAL cannot restart).
//   - "vdev": comma-separated software devices to create and use; default
//     crypto_aesni_gcm,crypto_aesni_mb,crypto_chacha20_poly1305,crypto_openssl
//     ("none" for none). Devices that do not exist yet are created with
//     rte_vdev_init after EAL has started.
//   - "devices": comma-separated cryptodev names to use, instead of the
//     vdevs plus every hardware device.
//   - "depth" (descriptors per device queue pair, default 1024), "mbufs"
//     (packet buffers, default 8192), "sessions" (default 8192).
//
// Without hugepages (no hugetlbfs mounted, or no free hugepage) the
// defaults are
//
//	-l <first CPU> --no-huge -m 512 --no-pci --no-shconf --no-telemetry --log-level=*:warning --vdev <each vdev>
//
// which need no root and no PCI device. With hugetlbfs mounted and free
// hugepages, --no-huge -m 512 --no-pci --no-shconf become --in-memory, so
// that PCI crypto devices bound to vfio-pci (Intel QAT and the like) are
// probed and used. rte_eal_init runs on an OS thread of its own that exits
// afterwards, so no goroutine inherits its CPU affinity. When EAL or a
// device cannot start, Open returns an error wrapping
// driver.ErrUnavailable that names what failed.
//
// On a server with QAT: reserve and mount hugepages (e.g.
// echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages and
// mount -t hugetlbfs none /dev/hugepages), bind the QAT virtual functions to
// vfio-pci (dpdk-devbind.py -b vfio-pci 0000:3d:01.0 ...), and open with
// no parameters, or name the devices, e.g.
// Params{"devices": "0000:3d:01.0_qat_sym"}; run as root or give the user
// the vfio device files.
//
// # Devices and sessions
//
// One driver named "dpdk" spreads sessions over every device it uses. Its
// capabilities are the union of the devices' (rte_cryptodev_info_get and
// the capability checks, with the key, IV, ICV and AAD sizes of each
// transform). A session goes to a device of the best rank for its
// transform, round robin among equals: hardware first, then
// crypto_aesni_gcm for AES-GCM, crypto_chacha20_poly1305 for
// ChaCha20-Poly1305, crypto_aesni_mb for CBC and HMAC (and as second choice
// for the AEADs), crypto_openssl last. Outbound sessions chain encryption
// then ICV generation, inbound ones ICV verification then decryption; ESP's
// NULL cipher and AH are auth-only sessions. The AEAD salt is kept on the
// Go side and prepended to each op's IV.
//
// Queue pair i of the driver is queue pair i of every device; the number
// of queue pairs is driver.Config.Workers (default: one per CPU), at most
// what the devices allow. The software PMDs do their work inside dequeue,
// on the caller's goroutine; the driver runs no goroutine of its own.
//
// # Buffers
//
// The driver implements driver.BufferPool: its buffers are mbufs, Mem the
// mbuf's buffer, Off its data offset and Handle the rte_mbuf pointer, so a
// packet read into one is framed in place and handed to the device with no
// copy. Ops on any other memory work too: the packet is copied into an
// mbuf on enqueue and back on completion (measured: 10 to 25 % slower per
// packet at 1420 bytes than driver buffers). A Handle is trusted only if it
// is an mbuf of the driver's pool whose buffer is Mem.
//
// Session.Close frees the device session once no op in flight uses it;
// DPDK clears the session's key material when it is freed. Keys cross to C
// in C memory that is wiped before NewSession returns.
//
// # Faults
//
// Op statuses map as SUCCESS→OK, AUTH_FAILED→AuthFailed,
// INVALID_SESSION→InvalidSession, INVALID_ARGS→InvalidArgs and
// ERROR/NOT_PROCESSED→Fault. Events reports a device's error interrupts,
// ops a device failed, and a device that stops taking ops (a stopped
// device's burst functions are stubs: its queued ops never come back, and
// offload moves the driver's SAs to the fallback engine).
package dpdk
