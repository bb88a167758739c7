package arch_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ismgw/ism"

// rule is what one package of the module may import of the module: only
// the packages in may when it is set (a path ending in "/" covers the
// packages under it), and never those in mayNot. The arrows of DESIGN.md
// go one way: cmd → ism → (ike, offload) → driver ← fallback, driver/*;
// the vocabulary (ipsec, clock, transform, selector) is below them all.
type rule struct {
	may, mayNot []string
}

// leaf imports nothing of the module but what it lists.
func leaf(may ...string) rule { return rule{may: append([]string{}, may...)} }

// rules has a rule for every package of the module: TestRules fails on a
// package without one and on a rule whose package is gone, so that a new or
// renamed package gets its arrows.
var rules = map[string]rule{
	".": leaf(), // this test

	// The vocabulary and the leaves.
	"transform":       leaf(),
	"selector":        leaf(),
	"offload/header":  leaf(),
	"clock":           leaf(),
	"netns":           leaf(),
	"ipsec":           leaf("transform"),
	"clock/clocktest": leaf("clock"),

	// Drivers and the offload engine.
	"driver":        leaf("ipsec", "transform"),
	"driver/dpdk":   leaf("driver", "ipsec", "transform"),
	"driver/kernel": leaf("driver", "ipsec", "netns", "transform"),
	"fallback":      leaf("driver", "ipsec", "transform"),
	"offload":       leaf("driver", "ipsec", "offload/header", "transform"),

	// IKE, which installs SAs through its seam and never touches packets.
	"ike":    leaf("clock", "ipsec", "selector", "transform"),
	"ike/v1": leaf("clock", "ike", "ipsec", "selector", "transform"),
	"ike/v2": leaf("clock", "ike", "ipsec", "selector", "transform"),
	// The version multiplexer: the one package that knows both versions
	// (ike itself must not import them).
	"ike/mux": leaf("ike", "ike/v1", "ike/v2", "ipsec"),

	// The line card: the gateway over its datapaths.
	"ism/config":    leaf("ipsec", "selector", "transform"),
	"ism/trap":      leaf("ipsec", "ism/config"),
	"ism/ikeconf":   leaf("clock", "ike", "ipsec", "ism/config", "selector", "transform"),
	"ism/vr":        leaf("netns"),
	"ism/transport": leaf("driver", "ism/transport/ring", "ism/vr", "netns", "offload", "offload/header"),
	"ism/datapath":  leaf("ipsec", "ism/transport", "ism/vr", "offload", "selector", "transform"),
	"ism/lookaside": leaf("clock", "driver", "fallback", "ipsec", "ism/datapath", "ism/transport", "ism/vr", "offload", "offload/header", "selector", "transform"),
	"ism/xfrm":      leaf("driver/kernel", "ipsec", "ism/datapath", "ism/vr", "selector", "transform"),
	"ism/operator":  leaf("ike", "ism/datapath", "offload"),
	"ism":           {mayNot: []string{"bench", "cmd/", "internal/", "cluster"}},
	// The raw ESP ring transport, standalone until ism/transport uses it.
	"ism/transport/ring": leaf(),

	// The cluster, beside the line card.
	"checkpoint": {mayNot: []string{"ism", "ism/", "ike", "ike/", "offload", "cluster", "driver", "fallback", "bench", "cmd/", "internal/"}},
	"cluster":    {mayNot: []string{"ism", "ism/", "ike", "ike/", "offload", "driver", "fallback", "bench", "cmd/", "internal/"}},

	// The benchmarks and the commands.
	"bench":        {mayNot: []string{"cmd/", "internal/etcdtest", "internal/swantest", "internal/testvec"}},
	"cmd/ismd":     {mayNot: []string{"bench", "internal/"}},
	"cmd/ismctl":   {mayNot: []string{"bench", "internal/"}},
	"cmd/ismbench": {mayNot: []string{"internal/"}},

	// Test and benchmark harnesses: never above what they test.
	"driver/drivertest":        {mayNot: []string{"ism", "ism/", "ike", "ike/", "offload", "bench", "cmd/"}},
	"ike/internal/iketest":     leaf("clock", "ike", "ipsec", "selector", "transform"),
	"internal/netlab":          leaf(),
	"internal/swantest/charon": leaf("netns"),
	"internal/swantest":        leaf("internal/swantest/charon", "internal/netlab", "netns"),
	"internal/testpkt":         leaf("offload/header"),
	"internal/testvec":         leaf(),
	"internal/etcdlab":         leaf("internal/netlab", "netns"),
	"internal/etcdtest":        leaf("internal/etcdlab"),
}

// production reports whether pkg ships: anything but this test, the
// packages under internal/ and the test helpers named *test.
func production(pkg string) bool {
	return pkg != "." && !strings.HasPrefix(pkg, "internal/") && !strings.HasSuffix(pkg, "test")
}

// pkgInfo is what go list says of a package.
type pkgInfo struct {
	imports, deps []string
}

// list returns the packages go list names, those of the module by their
// path in the module ("." for the root), with their module imports and all
// their dependencies.
func list(t *testing.T, args ...string) map[string]pkgInfo {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string]pkgInfo{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		var p pkgInfo
		for _, imp := range strings.Fields(f[1]) {
			if rel, ok := inModule(imp); ok {
				p.imports = append(p.imports, rel)
			}
		}
		p.deps = strings.Fields(f[2])
		if rel, ok := inModule(f[0]); ok {
			m[rel] = p
		} else {
			m[f[0]] = p // a dependency outside the module (go list -deps)
		}
	}
	return m
}

// inModule returns a module package's path in the module.
func inModule(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// matches reports whether pkg is one of list (a "/"-ended entry covering
// the packages under it).
func matches(pkg string, list []string) bool {
	for _, l := range list {
		if pkg == l || strings.HasSuffix(l, "/") && strings.HasPrefix(pkg, l) {
			return true
		}
	}
	return false
}

// TestRules: every package has a rule, and every rule a package.
func TestRules(t *testing.T) {
	pkgs := list(t, "./...")
	for pkg := range pkgs {
		if _, ok := rules[pkg]; !ok {
			t.Errorf("package %s has no rule in arch_test.go: say what it may import", pkg)
		}
	}
	for pkg := range rules {
		if _, ok := pkgs[pkg]; !ok {
			t.Errorf("arch_test.go has a rule for %s, which is no package (renamed or gone?)", pkg)
		}
	}
}

// TestImportArrows fails on any non-test import against a rule.
func TestImportArrows(t *testing.T) {
	for pkg, p := range list(t, "./...") {
		r := rules[pkg]
		for _, imp := range p.imports {
			if r.may != nil && !matches(imp, r.may) || matches(imp, r.mayNot) {
				t.Errorf("%s imports %s, against the arrows in arch_test.go and DESIGN.md", pkg, imp)
			}
		}
	}
}

// TestNoTestingInProduction: no package that ships depends on package
// testing, even through a test harness; the commands' binaries link none.
func TestNoTestingInProduction(t *testing.T) {
	for pkg, p := range list(t, "./...") {
		if production(pkg) && slices.Contains(p.deps, "testing") {
			t.Errorf("%s depends on package testing: production code must not import test plumbing", pkg)
		}
	}
	for pkg, p := range list(t, "-deps", "./cmd/...") {
		if slices.Contains(p.deps, "testing") || pkg == "testing" {
			t.Errorf("go list -deps ./cmd/... has package testing (through %s)", pkg)
			break
		}
	}
}

// TestEtcdOnlyInCluster: no package but cluster, its test harness and the
// commands depends on etcd's client, even indirectly, so that a gateway
// without a cluster never loads etcd code (DESIGN.md, Cluster).
func TestEtcdOnlyInCluster(t *testing.T) {
	pkgs := list(t, "./...")
	found := false
	for pkg, p := range pkgs {
		etcd := slices.ContainsFunc(p.deps, func(d string) bool { return strings.HasPrefix(d, "go.etcd.io/") })
		found = found || etcd
		if etcd && pkg != "cluster" && pkg != "internal/etcdtest" && !strings.HasPrefix(pkg, "cmd/") {
			t.Errorf("%s depends on etcd: only cluster may", pkg)
		}
	}
	if !found {
		t.Fatal("no package depends on etcd's client: the check above proves nothing")
	}
}
