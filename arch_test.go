package arch_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ismgw/ism/"

// forbidden lists, for each package (a prefix ending in "/" covers its
// subpackages), the module packages it must not import: the arrows of
// DESIGN.md go one way, cmd → ism → (ike, offload) → driver ← fallback,
// driver/*; transform and selector are leaves everyone may use.
var forbidden = map[string][]string{
	"transform":      {""},
	"selector":       {""},
	"offload/header": {""},
	"driver":         {"offload", "ism", "ike", "fallback", "bench", "cmd/"},
	"driver/dpdk":    {"offload", "ism", "ike", "bench", "cmd/"},
	"driver/kernel":  {"offload", "ism", "ike", "bench", "cmd/"},
	"fallback":       {"offload", "ism", "ike", "bench", "cmd/"},
	"offload":        {"fallback", "ism", "ike", "driver/dpdk", "driver/kernel", "bench", "cmd/"},
	"ike/":           {"ism", "offload", "fallback", "bench", "cmd/"},
	"ike":            {"ism", "offload", "fallback", "bench", "cmd/"},
	"ism/config":     {"ism", "ike", "offload", "fallback", "bench", "cmd/"},
	"ism/trap":       {"ike", "offload", "fallback", "bench", "cmd/"},
	"ism":            {"bench", "cmd/"},
	"bench":          {"cmd/"},
	"checkpoint":     {"ism", "ike", "offload", "cluster", "driver", "fallback", "bench", "cmd/"},
	"cluster":        {"ism", "ike", "offload", "driver", "fallback", "bench", "cmd/"},
}

// TestImportArrows fails on any non-test import against an arrow.
func TestImportArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		rules, ok := forbidden[pkg]
		if !ok {
			for prefix, r := range forbidden {
				if strings.HasSuffix(prefix, "/") && strings.HasPrefix(pkg, prefix) {
					rules, ok = r, true
				}
			}
		}
		if !ok {
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if strings.HasPrefix(dep, "internal/") {
				continue
			}
			for _, bad := range rules {
				if bad == "" || dep == bad || strings.HasSuffix(bad, "/") && strings.HasPrefix(dep, bad) || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s imports %s, against the arrows in DESIGN.md", pkg, dep)
				}
			}
		}
	}
}

// TestEtcdOnlyInCluster: no package but cluster, its test harness and the
// commands depends on etcd's client, even indirectly, so that a gateway
// without a cluster never loads etcd code (DESIGN.md, Cluster).
func TestEtcdOnlyInCluster(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), "go.etcd.io/etcd/client/v3") {
		t.Fatal("no package depends on etcd's client: the check below would prove nothing")
	}
	pkgs, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(pkgs)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		if pkg == "cluster" || pkg == "internal/etcdtest" || strings.HasPrefix(pkg, "cmd/") {
			continue
		}
		for _, d := range f[1:] {
			if strings.HasPrefix(d, "go.etcd.io/") {
				t.Errorf("%s depends on %s: only cluster may", pkg, d)
				break
			}
		}
	}
}
