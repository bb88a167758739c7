package checkpoint

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultMachineKey is where a gateway keeps the wrapping key it generates
// for itself when the operator gives none: under /etc, away from the state
// directory (DefaultStateDir) and its backups.
const DefaultMachineKey = "/etc/ism/checkpoint.key"

// Key file errors.
var (
	ErrKeyPermissions = errors.New("checkpoint: key file is readable by group or others")
	ErrKeyBesideState = errors.New("checkpoint: wrapping key inside the state directory")
)

// LoadKeyFile reads the operator's wrapping key: 32 bytes, raw or as 64
// hex digits (surrounding white space ignored). The file must be readable
// by its owner only (mode 0600 or 0400), as ssh requires of its keys.
func LoadKeyFile(path string) (*Sealer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600", ErrKeyPermissions, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: key file: %w", err)
	}
	defer clear(b)
	key := b
	if t := bytes.TrimSpace(b); len(t) == 2*KeySize {
		key = make([]byte, KeySize)
		defer clear(key)
		if _, err := hex.Decode(key, t); err != nil {
			return nil, fmt.Errorf("checkpoint: key file %s: not %d hex digits", path, 2*KeySize)
		}
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("checkpoint: key file %s: %d bytes, want %d raw or %d hex digits", path, len(b), KeySize, 2*KeySize)
	}
	return NewSealer(key)
}

// MachineKey returns the machine's own wrapping key at path, generating
// it on first use: 32 random bytes in a file of mode 0600 (its directory
// made 0700 if missing), linked into place complete, so that two daemons
// starting together agree on one key.
func MachineKey(path string) (*Sealer, error) {
	s, err := LoadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: machine key: %w", err)
	}
	key := make([]byte, KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".checkpoint-key-*")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: machine key: %w", err)
	}
	defer os.Remove(tmp.Name())
	text := make([]byte, 2*KeySize+1)
	defer clear(text)
	hex.Encode(text, key)
	text[2*KeySize] = '\n'
	if err := writeSync(tmp, text); err != nil {
		return nil, fmt.Errorf("checkpoint: machine key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("checkpoint: machine key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("checkpoint: machine key: %w", err)
	}
	return LoadKeyFile(path)
}

// checkApart refuses a key file inside the state directory: a copy of the
// state (a backup, a disk image of /var) must not carry its key.
func checkApart(keyPath, stateDir string) error {
	k, err := filepath.Abs(keyPath)
	if err != nil {
		return err
	}
	d, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(d, k); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%w: %s is under %s", ErrKeyBesideState, k, d)
	}
	return nil
}

// writeSync writes b to f (mode 0600), syncs and closes it.
func writeSync(f *os.File, b []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
