// Package config parses and validates the ISM configuration language, the
// JUNOSe-style command lines documented in docs/config.md: one command a line,
// blocks (transform sets, ISAKMP policy rules, secure IP interfaces) entered by
// a command and indented under it, "!" comments and blank lines ignored.
//
// Parse and ParseFile return a typed Config, or every error of the file at
// once, each an Error printed as "FILE:LINE: message" and joined with
// errors.Join. Checks that need the host (the tunnel source must be an address
// of the transport virtual router) run in a second stage, Config.CheckHost.
//
// Secrets (manual SA keys, pre-shared keys, SNMP secrets) are ipsec.Key
// values: no error, String method or fmt verb prints them, and Config.Zero
// overwrites them.
package config
