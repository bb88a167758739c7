package bench

import (
	"fmt"
	"os"
	"strings"

	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/transform"
)

// IKE is the phase 1 proposal of the benchmarks that negotiate: the same
// on both sides, ISM's isakmp-policy-rule and charon's proposals, and the
// IKE version both speak.
type IKE struct {
	Encryption string // aes128, aes256, 3des
	Hash       string // sha (SHA-1), sha256
	Group      int    // Diffie-Hellman group: 2, 5, 14, 15, 16, 19, 20, 21
	// Version is 1 (main mode and quick mode; 0 means 1) or 2 (IKE_SA_INIT
	// and IKE_AUTH).
	Version int
}

// version is p's IKE version, 1 or 2.
func (p IKE) version() int { return max(p.Version, 1) }

// DefaultIKE is AES-128, SHA-256 and the 2048-bit MODP group (14).
var DefaultIKE = IKE{Encryption: "aes128", Hash: "sha256", Group: 14}

// swanGroups names the DH groups as strongSwan does.
var swanGroups = map[int]string{1: "modp768", 2: "modp1024", 5: "modp1536", 14: "modp2048", 15: "modp3072",
	16: "modp4096", 19: "ecp256", 20: "ecp384", 21: "ecp521"}

// Validate checks that both ISM and strongSwan can be given the proposal.
func (p IKE) Validate() error {
	if _, ok := swanGroups[p.Group]; !ok {
		return fmt.Errorf("bench: DH group %d: want 1, 2, 5, 14, 15, 16, 19, 20 or 21", p.Group)
	}
	if _, ok := map[string]bool{"des": true, "3des": true, "aes128": true, "aes192": true, "aes256": true}[p.Encryption]; !ok {
		return fmt.Errorf("bench: IKE encryption %q: want des, 3des, aes128, aes192 or aes256", p.Encryption)
	}
	if _, ok := map[string]bool{"md5": true, "sha": true, "sha256": true}[p.Hash]; !ok {
		return fmt.Errorf("bench: IKE hash %q: want md5, sha or sha256", p.Hash)
	}
	if p.Version < 0 || p.Version > 2 {
		return fmt.Errorf("bench: IKE version %d: want 1 or 2", p.Version)
	}
	return nil
}

// policyRule is ISM's configuration of the proposal.
func (p IKE) policyRule() string {
	v := ""
	if p.version() == 2 {
		v = "ipsec ike-version 2\n"
	}
	return v + fmt.Sprintf("ipsec isakmp-policy-rule 1\n  encryption %s\n  hash %s\n  group %d\n  authentication pre-shared-key\n",
		p.Encryption, p.Hash, p.Group)
}

// swan is charon's name of the proposal, e.g. aes128-sha256-modp2048.
func (p IKE) swan() string {
	hash := map[string]string{"md5": "md5", "sha": "sha1", "sha256": "sha256"}[p.Hash]
	return p.Encryption + "-" + hash + "-" + swanGroups[p.Group]
}

// swanESP is charon's name of an ESP transform, e.g. aes128gcm16 for
// esp-aes128-gcm16.
func swanESP(t transform.Transform) (string, error) {
	if t.Protocol != transform.ESP {
		return "", fmt.Errorf("bench: %s: strongSwan's userspace ESP does not do AH", t)
	}
	var parts []string
	switch t.Cipher {
	case transform.CipherNull:
		parts = append(parts, "null")
	case transform.CipherDESCBC:
		parts = append(parts, "des")
	case transform.Cipher3DESCBC:
		parts = append(parts, "3des")
	case transform.CipherAESCBC:
		parts = append(parts, fmt.Sprintf("aes%d", t.KeyBits))
	case transform.CipherAESGCM:
		parts = append(parts, fmt.Sprintf("aes%dgcm%d", t.KeyBits, t.AEADICVLen))
	case transform.CipherChaCha20Poly1305:
		parts = append(parts, "chacha20poly1305")
	default:
		return "", fmt.Errorf("bench: %s: no strongSwan name", t)
	}
	if t.Integrity != transform.IntegrityNone {
		parts = append(parts, map[transform.Integrity]string{transform.HMACMD596: "md5", transform.HMACSHA196: "sha1",
			transform.HMACSHA256128: "sha256", transform.HMACSHA384192: "sha384", transform.HMACSHA512256: "sha512"}[t.Integrity])
	}
	return strings.Join(parts, "-"), nil
}

// swanPeer is one charon connection, PSK-authenticated by address, never
// rekeyed during a run, of IKE version Version (0 means 1).
type swanPeer struct {
	Name     string
	Local    string // local_addrs: an address, or a prefix for a responder
	Remote   string // remote_addrs
	IKE      string // proposals
	ESP      string // esp_proposals
	Version  int
	Children []swanChild
}

// swanChild is one child SA configuration of a connection.
type swanChild struct {
	Name              string
	LocalTS, RemoteTS string
}

// conn is the connection for charon's renderer.
func (c swanPeer) conn() charon.Connection {
	conn := charon.Connection{Name: c.Name, Version: max(c.Version, 1), LocalAddrs: []string{c.Local}, RemoteAddrs: []string{c.Remote},
		Proposals: []string{c.IKE}, Timers: charon.Timers{Rekey: charon.Never},
		Local: charon.End{Auth: "psk"}, Remote: charon.End{Auth: "psk"}}
	if conn.Version == 2 {
		no := false
		conn.Mobike = &no // the responder's many addresses are not one peer's
	}
	for _, ch := range c.Children {
		conn.Children = append(conn.Children, charon.Child{Name: ch.Name, LocalTS: []string{ch.LocalTS}, RemoteTS: []string{ch.RemoteTS},
			ESPProposals: []string{c.ESP}, Timers: charon.Timers{Rekey: charon.Never}})
	}
	return conn
}

// swanctlConf renders connections and the one PSK every peer uses.
func swanctlConf(psk string, conns ...swanPeer) string {
	s := charon.Swanctl{Secrets: []charon.Secret{{Name: "ike-bench", Secret: psk}}}
	for _, c := range conns {
		s.Connections = append(s.Connections, c.conn())
	}
	return s.Render()
}

// startCharon starts a quiet charon in namespace ns with its files in a
// temporary directory; both go away when the benchmark ends.
func startCharon(h *harness, ns string, c charon.Conf) *charon.Charon {
	h.Helper()
	c.Quiet = true
	// Hash tables sized for thousands of IKE SAs, as strongSwan advises
	// for many tunnels (the default is one bucket).
	c.Charon += "\n  ikesa_table_size = 4096\n  ikesa_table_segments = 16\n"
	return charon.Start(h, ns, tempDir(h), c)
}

// tempDir returns a directory removed when the benchmark ends.
func tempDir(h *harness) string {
	dir, err := os.MkdirTemp("", "ismbench-charon-")
	if err != nil {
		h.Fatalf("bench: %v", err)
	}
	h.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// swanAvailable says why strongSwan cannot be used, or "".
func swanAvailable() string {
	if err := charon.Available(); err != nil {
		return err.Error()
	}
	return ""
}
