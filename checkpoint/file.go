package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultStateDir is the daemon's state directory, StateFileName the
// checkpoint file in it and LockFileName the lock its daemon holds.
const (
	DefaultStateDir = "/var/lib/ism"
	StateFileName   = "checkpoint"
	LockFileName    = "lock"
)

// ErrStateInUse says another process holds the state directory: two
// daemons sharing one would overwrite each other's checkpoints and resume
// each other's SAs.
var ErrStateInUse = errors.New("checkpoint: state directory in use by another daemon")

// ErrNoState is returned by Load when there is no state file yet (a first
// start); it wraps fs.ErrNotExist.
var ErrNoState = fmt.Errorf("checkpoint: no state file: %w", fs.ErrNotExist)

// KeyConfig says where a state file's wrapping key comes from.
type KeyConfig struct {
	// File is the operator's key file (LoadKeyFile). When empty, the
	// machine key at Machine (DefaultMachineKey if empty) is used,
	// generated on first use.
	File    string
	Machine string
}

// StateFile is a gateway's checkpoint file. Save replaces it atomically;
// Load reads it. Its zero value is not usable; call OpenStateFile. Save
// and Load may be called from several goroutines, but concurrent Saves
// race for which lands last.
type StateFile struct {
	dir, path string
	seal      *Sealer
	lock      *os.File // flock'd while the StateFile is open
}

// OpenStateFile returns the state file in dir (made 0700 if missing) and
// loads its wrapping key, refusing a key inside dir. It locks dir (an
// exclusive flock on its lock file, which holds the pid): a second
// OpenStateFile of the same directory, in this process or another, fails
// with ErrStateInUse until Close or the holder's exit.
func OpenStateFile(dir string, key KeyConfig) (*StateFile, error) {
	if dir == "" {
		dir = DefaultStateDir
	}
	kp, load := key.File, LoadKeyFile
	if kp == "" {
		kp, load = key.Machine, MachineKey
		if kp == "" {
			kp = DefaultMachineKey
		}
	}
	if err := checkApart(kp, dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: state directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := load(kp)
	if err != nil {
		lock.Close()
		return nil, err
	}
	// A save cut short (the daemon killed between create and rename)
	// leaves its temporary file: remove them.
	left, _ := filepath.Glob(filepath.Join(dir, tempPattern))
	for _, f := range left {
		os.Remove(f)
	}
	return &StateFile{dir: dir, path: filepath.Join(dir, StateFileName), seal: s, lock: lock}, nil
}

// lockDir takes dir's lock, or says which process holds it. The lock is
// the kernel's (flock), so it goes with its holder, even one killed.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = "pid " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("%w: %s is locked by %s (%s); give each daemon its own checkpoint state-directory",
				ErrStateInUse, dir, holder, path)
		}
		return nil, fmt.Errorf("checkpoint: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Close releases the state directory's lock. The StateFile must not be
// used after.
func (f *StateFile) Close() error {
	if f.lock == nil {
		return nil
	}
	err := f.lock.Close()
	f.lock = nil
	return err
}

// tempPattern names Save's temporary files.
const tempPattern = "." + StateFileName + "-*"

// Path returns the file's path.
func (f *StateFile) Path() string { return f.path }

// KeyID names the wrapping key (safe to show).
func (f *StateFile) KeyID() string { return f.seal.KeyID() }

// Save writes s to a temporary file in the state directory, syncs it,
// renames it over the state file and syncs the directory: after a crash
// the file is the old state or the new one, never a mix.
func (f *StateFile) Save(s *State) error {
	body, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	env, err := f.seal.Seal(KindState, body, nil)
	clear(body)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(f.dir, tempPattern)
	if err != nil {
		return fmt.Errorf("checkpoint: save: %w", err)
	}
	if err := writeSync(tmp, env); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint: save %s: %w", f.path, err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint: save: %w", err)
	}
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("checkpoint: save: %w", err)
	}
	return nil
}

// Load reads the state file. A missing file is ErrNoState; a file that is
// not a checkpoint, of another version, sealed under another key, corrupt
// or malformed gives an error that wraps ErrNotCheckpoint, ErrVersion,
// ErrWrongKey, ErrCorrupt or ErrMalformed and names the file.
func (f *StateFile) Load() (*State, error) {
	env, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	s, err := OpenState(f.seal, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return s, nil
}

// OpenState opens and decodes the bytes of a state file.
func OpenState(seal *Sealer, env []byte) (*State, error) {
	body, err := seal.Open(KindState, env, nil)
	if err != nil {
		return nil, err
	}
	defer clear(body)
	s := &State{}
	if err := s.UnmarshalBinary(body); err != nil {
		return nil, err
	}
	return s, nil
}
