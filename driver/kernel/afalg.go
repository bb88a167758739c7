package kernel

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// AF_ALG socket types and the kernel options that provide them.
const (
	typeAEAD     = "aead"
	typeSkcipher = "skcipher"
	typeHash     = "hash"
)

var typeConfig = map[string]string{
	typeAEAD:     "CONFIG_CRYPTO_USER_API_AEAD",
	typeSkcipher: "CONFIG_CRYPTO_USER_API_SKCIPHER",
	typeHash:     "CONFIG_CRYPTO_USER_API_HASH",
}

// noSocketError is a failure of socket(AF_ALG) itself.
type noSocketError struct{ errno unix.Errno }

func (e *noSocketError) Error() string {
	return "socket(AF_ALG, SOCK_SEQPACKET) fails with " + unix.ErrnoName(e.errno)
}

// bindAlg opens an AF_ALG transform socket bound to the algorithm.
func bindAlg(typ, name string) (int, error) {
	fd, err := unix.Socket(unix.AF_ALG, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, &noSocketError{errnoOf(err)}
	}
	if err := unix.Bind(fd, &unix.SockaddrALG{Type: typ, Name: name}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind(%s, %q) fails with %s", typ, name, unix.ErrnoName(errnoOf(err)))
	}
	return fd, nil
}

func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// setKey hands key to a transform socket (ALG_SET_KEY). The kernel copies
// it; no Go copy is made, so the caller's is the only one to zero.
func setKey(fd int, key []byte) error {
	if len(key) == 0 {
		return nil
	}
	return setsockopt(fd, unix.ALG_SET_KEY, unsafe.Pointer(&key[0]), len(key))
}

// setAuthSize sets an AEAD's tag length (ALG_SET_AEAD_AUTHSIZE takes it as
// the option length, with no value).
func setAuthSize(fd, n int) error {
	return setsockopt(fd, unix.ALG_SET_AEAD_AUTHSIZE, nil, n)
}

func setsockopt(fd, opt int, val unsafe.Pointer, n int) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_ALG, uintptr(opt), uintptr(val), uintptr(n), 0)
	if e != 0 {
		return e
	}
	return nil
}

// afalgAlgorithms are probed in this order: the ones the driver uses for
// ISM's transforms, and the combined authenc ones that hardware engines
// (QAT, CAAM) register, reported for the operator's information.
var afalgAlgorithms = []struct{ typ, name string }{
	{typeAEAD, algGCM},
	{typeAEAD, "gcm(aes)"},
	{typeAEAD, algChaCha},
	{typeAEAD, "authenc(hmac(sha1),cbc(aes))"},
	{typeAEAD, "authenc(hmac(sha256),cbc(aes))"},
	{typeSkcipher, algAESCBC},
	{typeSkcipher, alg3DESCBC},
	{typeSkcipher, algDESCBC},
	{typeHash, algHMACMD5},
	{typeHash, algHMACSHA1},
	{typeHash, algHMACSHA256},
	{typeHash, algHMACSHA384},
	{typeHash, algHMACSHA512},
}

// probeAFALG binds a socket to each algorithm.
func probeAFALG() (Status, []Algorithm) {
	algs := make([]Algorithm, len(afalgAlgorithms))
	var noSocket error
	bound := false
	for i, a := range afalgAlgorithms {
		algs[i] = Algorithm{Name: a.name, Type: a.typ}
		if noSocket != nil {
			algs[i].Reason = "no AF_ALG"
			continue
		}
		fd, err := bindAlg(a.typ, a.name)
		var ns *noSocketError
		switch {
		case errors.As(err, &ns):
			noSocket = err
			algs[i].Reason = "no AF_ALG"
		case err != nil:
			algs[i].Reason = fmt.Sprintf("%v: the kernel lacks the algorithm or AF_ALG %s sockets (%s)", err, a.typ, typeConfig[a.typ])
		default:
			unix.Close(fd)
			algs[i].Present, bound = true, true
		}
	}
	switch {
	case noSocket != nil:
		return Status{Reason: fmt.Sprintf("kernel has no AF_ALG (CONFIG_CRYPTO_USER_API with _AEAD, _SKCIPHER, _HASH): %v", noSocket)}, algs
	case !bound:
		return Status{Reason: "AF_ALG sockets open but no algorithm binds (CONFIG_CRYPTO_USER_API_AEAD, _SKCIPHER, _HASH, or the algorithms, are missing)"}, algs
	}
	return Status{Present: true}, algs
}
