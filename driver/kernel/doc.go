// Package kernel is ISM's Linux kernel offload: lookaside crypto through the
// kernel crypto API (AF_ALG), registered as the "kernel" driver, and protocol
// offload through XFRM, where the kernel (or a NIC, with XFRMA_OFFLOAD_DEV)
// frames ESP itself.
//
// # Probe
//
// Probe finds out what the running kernel offers by trying, never by reading
// configuration files: it binds an AF_ALG socket to each algorithm, and it
// adds and deletes a throwaway SA of every transform in a throwaway network
// namespace (which vanishes with the probe's netlink socket). Its Report has
// a Status (present, or the reason it is not) per capability, the AF_ALG
// availability of each algorithm, and the transforms XFRM accepts.
//
// # The "kernel" driver (AF_ALG)
//
// The driver implements driver.Driver with the LookasideCrypto action for
// every transform whose algorithms bind: rfc4106(gcm(aes)) and
// rfc7539esp(chacha20,poly1305) as AEADs, and cbc(aes), cbc(des3_ede),
// cbc(des) with hmac(md5|sha1|sha256|sha384|sha512) as a cipher and a
// separate HMAC, so that an op's auth range may be any region (ESN high bits,
// AH). Each queue pair has a worker goroutine making the system calls, so
// several requests are in the kernel, and in a hardware engine behind it, at
// once. Keys go from the caller's memory straight to the kernel
// (ALG_SET_KEY); the Go side keeps no copy, and Session.Close closes the
// sockets, on which the kernel frees the transform and zeroes its key. When
// AF_ALG is absent the registry probe returns an error wrapping
// driver.ErrUnavailable with the reason, and the dispatcher uses another
// driver.
//
// # XFRM
//
// XFRM is a netlink connection to one namespace's SA and policy databases:
// AddSA, UpdateSA (after AllocSPI), QuerySA (bytes, packets, add, first and
// last use), DeleteSA, AddPolicy and DeletePolicy, with algorithms, keys,
// replay window, ESN, UDP encapsulation, lifetimes, marks, XFRM interface IDs
// and NIC offload. Policies are how traffic reaches kernel SAs. Requests are
// built in a fixed buffer that is wiped after sending; see XFRM for why no
// netlink library is used.
//
// # Running the tests where the capabilities exist
//
// The tests that need AF_ALG or XFRM ESP skip, printing the probe's reason,
// on kernels without them (such as the CI machine's, which has XFRM netlink
// but neither ESP, AH nor AF_ALG). On a host with them they run as root:
//
//	go test -race ./driver/kernel/
//
// The kernel needs CONFIG_CRYPTO_USER_API_AEAD, _SKCIPHER and _HASH (modules
// af_alg, algif_aead, algif_skcipher, algif_hash), CONFIG_CRYPTO_GCM,
// CONFIG_CRYPTO_CHACHA20POLY1305, CONFIG_CRYPTO_DES, CONFIG_CRYPTO_AUTHENC
// and CONFIG_CRYPTO_SHA512 (gcm, chacha20poly1305, des_generic, authenc,
// sha512_generic), CONFIG_XFRM_USER, CONFIG_INET_ESP, CONFIG_INET_AH and
// CONFIG_INET6_ESP (xfrm_user, esp4, ah4, esp6) and CONFIG_VETH. Debian's
// stock kernel has all of them as modules; load them first:
//
//	modprobe -a af_alg algif_aead algif_skcipher algif_hash gcm chacha20poly1305 \
//		des_generic authenc sha512_generic xfrm_user esp4 ah4 esp6 veth
//
// testdata/vm/run.sh boots Debian's kernel in a QEMU guest with those modules
// and runs the tests there (it needs qemu-system-x86 and busybox-static; set
// ISM_VM_TCG=1 where nested KVM does not boot):
//
//	ISM_VM_TCG=1 bash driver/kernel/testdata/vm/run.sh
//
// With ISM_VM_PKG it builds and runs another package's tests instead: package
// ism's XFRM protocol-offload datapath (gateway A on XFRM with an XFRM
// interface, gateway B on the software engine, manual and IKEv1 tunnels)
// runs in the guest with
//
//	ISM_VM_TCG=1 ISM_VM_PKG=./ism bash driver/kernel/testdata/vm/run.sh -test.run TestXFRM
//
// `make test-kernel`, part of `make test` and so of CI, runs both.
package kernel
