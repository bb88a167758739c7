package ism

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/selector"
)

// ikeConfig translates the configuration for the IKE daemon.
func ikeConfig(cfg *config.Config, log *slog.Logger, clk clock.Clock) (ike.Config, error) {
	c := ike.Config{Logger: log, Clock: clk,
		Lifetime:         cfg.Lifetime,
		DPD:              cfg.DPD,
		FailoverHoldDown: holdDown(cfg.FailoverHoldDown),
		Backoff:          ike.Backoff(cfg.Backoff)}
	for _, p := range cfg.IKEPolicies {
		ip := ike.Policy{Group: int(p.Group), Lifetime: p.Lifetime}
		ip.Encryption = map[config.IKEEncryption]ike.Encryption{config.IKEDES: ike.EncDES, config.IKE3DES: ike.Enc3DES,
			config.IKEAES128: ike.EncAES128, config.IKEAES192: ike.EncAES192, config.IKEAES256: ike.EncAES256}[p.Encryption]
		ip.Hash = map[config.IKEHash]ike.Hash{config.IKEMD5: ike.HashMD5, config.IKESHA1: ike.HashSHA1, config.IKESHA256: ike.HashSHA256}[p.Hash]
		ip.Auth = ike.AuthPSK
		if p.Authentication == config.RSASignatureAuth {
			ip.Auth = ike.AuthRSASig
		}
		c.Policies = append(c.Policies, ip)
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
		c.Certificates = certs
	}
	for _, t := range cfg.Tunnels {
		if t.Type != config.Signaled {
			continue
		}
		it := ike.Tunnel{
			Name: t.Name, Source: t.TunnelSource, Destination: t.TunnelDestination.Addr,
			Mode: ike.MainMode, TransformSet: t.TransformSet.Transforms, PFSGroup: int(t.PFSGroup),
			Lifetime:      t.Lifetime,
			LocalSelector: t.LocalSelector, RemoteSelector: t.RemoteSelector,
			UDPEncap: t.UDPEncapPort != 0, BackupDestination: t.BackupDestination.Addr,
			FailoverHoldDown: holdDown(t.FailoverHoldDown),
		}
		dpd := t.DPD
		it.DPD = &dpd
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
	key, err := x509.ParsePKCS8PrivateKey(blocks[0].Bytes)
	if err != nil {
		key, err = x509.ParsePKCS1PrivateKey(blocks[0].Bytes)
	}
	clear(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("ism: private key %s: %w", c.Key, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ism: private key %s cannot sign", c.Key)
	}
	out.Key = signer
	return out, nil
}
