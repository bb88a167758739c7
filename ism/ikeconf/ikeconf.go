// Package ikeconf translates a gateway's configuration (ism/config) into
// the IKE daemon's (ike.Config): what the configuration language says of
// policies, keys, certificates and timers, in the words IKE negotiates
// with. It has no state.
package ikeconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/selector"
)

// Build translates the configuration's IKE part (policy rules, pre-shared
// keys, certificates, identities, timers, the retransmission schedule)
// for the IKE daemon; a certificate or key that cannot be loaded, or a key
// of the wrong type for a rule, is an error.
func Build(cfg *config.Config, log *slog.Logger, clk clock.Clock) (ike.Config, error) {
	c := ike.Config{Logger: log, Clock: clk,
		Lifetime:         cfg.Lifetime,
		DPD:              cfg.DPD,
		FailoverHoldDown: holdDown(cfg.FailoverHoldDown),
		Backoff:          ike.Backoff(cfg.Backoff),
		FragmentMTU:      cfg.FragmentMTU,
		CookieThreshold:  cfg.CookieThreshold,
		Retransmit:       ikeRetransmit(cfg.Retransmit)}
	for _, p := range cfg.IKEPolicies {
		c.Policies = append(c.Policies, ikePolicy(p))
	}
	for _, k := range cfg.PreSharedKeys {
		peer := k.Identity.Value
		if k.Addr.IsValid() {
			peer = k.Addr.String()
		}
		c.PreSharedKeys = append(c.PreSharedKeys, ike.PreSharedKey{Peer: peer, Key: k.Key.Clone()})
	}
	if cfg.Certificates.Local != "" {
		certs, err := loadCertificates(cfg.Certificates)
		if err != nil {
			return c, err
		}
		if err := checkKeyType(cfg, certs); err != nil {
			return c, err
		}
		c.Certificates = certs
	}
	signaled := 0
	for _, t := range cfg.Tunnels {
		if t.Type == config.Signaled {
			signaled++
		}
	}
	if signaled > 0 {
		c.Tunnels = make([]ike.Tunnel, 0, signaled) // the daemons keep it
	}
	for _, t := range cfg.Tunnels {
		if t.Type != config.Signaled {
			continue
		}
		it := ike.Tunnel{
			Name: t.Name, Version: t.IKEVersion, SAMode: t.Mode, ESN: t.ESN,
			Source: t.TunnelSource, Destination: t.TunnelDestination.Addr,
			Mode: ike.MainMode, TransformSet: t.TransformSet.Transforms, PFSGroup: int(t.PFSGroup),
			Lifetime:      t.Lifetime,
			LocalSelector: t.LocalSelector, RemoteSelector: t.RemoteSelector,
			UDPEncap: t.UDPEncapPort != 0, BackupDestination: t.BackupDestination.Addr,
			FailoverHoldDown: holdDown(t.FailoverHoldDown),
		}
		it.DPD = &t.DPD // the configuration's, shared: it never changes
		if t.IKEMode == config.AggressiveMode {
			it.Mode = ike.AggressiveMode
		}
		var err error
		if it.LocalID, err = ikeIdentity(t.LocalIdentity); err == nil {
			it.RemoteID, err = ikeIdentity(t.RemoteIdentity)
		}
		if err != nil {
			return c, fmt.Errorf("%s: %w", t, err)
		}
		// The default remote identity is the destination's address; a
		// backup destination presents its own address.
		if t.BackupDestination.Addr.IsValid() && t.RemoteIdentity.Kind == config.IdentityAddress && t.RemoteIdentity.Addr == t.TunnelDestination.Addr {
			it.RemoteID = ike.Identity{}
		}
		if !it.LocalSelector.Valid() || !it.RemoteSelector.Valid() {
			any := selector.AnyOf(t.TunnelSource)
			if !it.LocalSelector.Valid() {
				it.LocalSelector = any
			}
			if !it.RemoteSelector.Valid() {
				it.RemoteSelector = any
			}
		}
		c.Tunnels = append(c.Tunnels, it)
	}
	return c, nil
}

// ikeRetransmit maps the configuration's schedule to IKE's, where zero
// Tries is the default and a negative one no resend.
func ikeRetransmit(r config.Retransmit) ike.Retransmit {
	out := ike.Retransmit{Timeout: r.Timeout, Base: r.Base, Tries: r.Count, Cap: r.Cap}
	if out.Tries == 0 {
		out.Tries = -1
	}
	return out
}

// holdDown maps the configuration's hold-down (0: none) to IKE's (0: the
// default, negative: none).
func holdDown(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func ikeIdentity(id config.Identity) (ike.Identity, error) {
	switch id.Kind {
	case config.IdentityNone:
		return ike.Identity{}, nil
	case config.IdentityAddress:
		return ike.AddressIdentity(id.Addr), nil
	}
	return ike.ParseIdentity(id.Value)
}

// loadCertificates reads the PEM files of rsa-signature authentication.
func loadCertificates(c config.Certificates) (*ike.Certificates, error) {
	out := &ike.Certificates{}
	read := func(path string) ([]*pem.Block, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var blocks []*pem.Block
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			blocks = append(blocks, blk)
		}
		if len(blocks) == 0 {
			return nil, fmt.Errorf("%s: no PEM data", path)
		}
		return blocks, nil
	}
	certs := func(path string) ([]*x509.Certificate, error) {
		blocks, err := read(path)
		if err != nil {
			return nil, err
		}
		var out []*x509.Certificate
		for _, b := range blocks {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	var err error
	if out.Chain, err = certs(c.Local); err != nil {
		return nil, fmt.Errorf("ism: local certificate: %w", err)
	}
	for _, ca := range c.CAs {
		cs, err := certs(ca)
		if err != nil {
			return nil, fmt.Errorf("ism: CA certificate: %w", err)
		}
		out.CAs = append(out.CAs, cs...)
	}
	blocks, err := read(c.Key)
	if err != nil {
		return nil, fmt.Errorf("ism: private key: %w", err)
	}
	key, err := parsePrivateKey(blocks[0])
	clear(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("ism: private key %s: %w", c.Key, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ism: private key %s cannot sign", c.Key)
	}
	out.Key = signer
	out.RSAPSS = c.RSAPSS
	return out, nil
}

// parsePrivateKey reads a PEM private key by its type: PKCS #1
// ("RSA PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY", RFC 5915) or PKCS #8
// ("PRIVATE KEY"), which is also tried for any other type.
func parsePrivateKey(b *pem.Block) (any, error) {
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	}
	return x509.ParsePKCS8PrivateKey(b.Bytes)
}

// checkKeyType refuses a local key of the wrong type for a policy rule's
// signatures, or rsa-pss with a key that is not RSA, naming the rule's
// authentication line (or the certificate's).
func checkKeyType(cfg *config.Config, certs *ike.Certificates) error {
	kind := ""
	switch certs.Key.Public().(type) {
	case *rsa.PublicKey:
		kind = "RSA"
	case *ecdsa.PublicKey:
		kind = "ECDSA"
	}
	at := func(p config.Pos, format string, args ...any) error {
		return config.Error{File: p.File, Line: p.Line, Msg: fmt.Sprintf(format, args...)}
	}
	for _, p := range cfg.IKEPolicies {
		want := map[config.AuthMethod]string{config.RSASignatureAuth: "RSA", config.ECDSASignatureAuth: "ECDSA"}[p.Authentication]
		if want != "" && want != kind {
			return at(p.AuthPos, "authentication: %s needs an %s key, and %s holds a %s key", p.Authentication, want, cfg.Certificates.Key, keyKind(kind))
		}
	}
	if certs.RSAPSS && kind != "RSA" {
		return at(cfg.Certificates.Pos, "ipsec local-certificate: rsa-pss needs an RSA key, and %s holds %s key", cfg.Certificates.Key, keyKind(kind))
	}
	return nil
}

// keyKind names a key type with its article.
func keyKind(k string) string {
	switch k {
	case "RSA":
		return "an RSA"
	case "ECDSA":
		return "an ECDSA"
	}
	return "another type of"
}

// ikePolicy maps a policy rule to IKE's, for both versions.
func ikePolicy(p config.IKEPolicy) ike.Policy {
	hashes := map[config.IKEHash]ike.Hash{config.IKEMD5: ike.HashMD5, config.IKESHA1: ike.HashSHA1, config.IKESHA256: ike.HashSHA256,
		config.IKESHA384: ike.HashSHA384, config.IKESHA512: ike.HashSHA512}
	ip := ike.Policy{Group: int(p.Group), Lifetime: p.Lifetime, Hash: hashes[p.Hash], PRF: hashes[p.PRF],
		AdditionalKE: slices.Clone(p.AdditionalKE), AdditionalKEOptional: p.AdditionalKEOptional}
	ip.Encryption = map[config.IKEEncryption]ike.Encryption{config.IKEDES: ike.EncDES, config.IKE3DES: ike.Enc3DES,
		config.IKEAES128: ike.EncAES128, config.IKEAES192: ike.EncAES192, config.IKEAES256: ike.EncAES256,
		config.IKEAES128GCM: ike.EncAES128GCM, config.IKEAES256GCM: ike.EncAES256GCM}[p.Encryption]
	ip.Auth = map[config.AuthMethod]ike.AuthMethod{config.PreSharedKeyAuth: ike.AuthPSK, config.RSASignatureAuth: ike.AuthRSASig,
		config.ECDSASignatureAuth: ike.AuthECDSASig}[p.Authentication]
	return ip
}
