//go:build dpdk && cgo

package dpdk

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ismgw/ism/driver"
)

// TestOpenErrors: bad parameters and missing devices fail with errors that
// say what is wrong; host problems wrap ErrUnavailable.
func TestOpenErrors(t *testing.T) {
	cases := []struct {
		params      map[string]string
		unavailable bool
		says        string
	}{
		{map[string]string{"depth": "many"}, false, "depth"},
		{map[string]string{"mbufs": "1"}, false, "mbufs"},
		{map[string]string{"devices": "crypto_nonesuch"}, true, "crypto_nonesuch"},
		{map[string]string{"vdev": "crypto_nonesuch"}, true, "crypto_nonesuch"},
		{map[string]string{"vdev": "none"}, true, "no crypto device"},
		{map[string]string{"eal": "-l 0 --no-huge -m 64"}, true, "EAL already runs"},
	}
	openT(t, 1, nil).Close() // EAL up with the defaults
	for _, c := range cases {
		_, err := driver.Open(Name, driver.Config{Workers: 1, Params: c.params})
		if err == nil {
			t.Fatalf("%v: opened", c.params)
		}
		if errors.Is(err, driver.ErrUnavailable) != c.unavailable || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v", c.params, err)
		}
		t.Logf("%v: %v", c.params, err)
	}
	// A device serves one open driver at a time.
	d := openT(t, 1, nil)
	if _, err := Open(driver.Config{Workers: 1}); !errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second open: %v", err)
	}
	d.Close()
	openT(t, 1, nil)
}

// TestEALFailure starts EAL with arguments it refuses, in a child process
// (EAL starts once per process), and checks the error.
func TestEALFailure(t *testing.T) {
	if os.Getenv("ISM_DPDK_EAL_CHILD") == "1" {
		_, err := Open(driver.Config{Params: map[string]string{"eal": "-l 4095 --no-huge -m 64 --no-pci --no-shconf"}})
		fmt.Printf("unavailable=%v err=%v\n", errors.Is(err, driver.ErrUnavailable), err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEALFailure$")
	cmd.Env = append(os.Environ(), "ISM_DPDK_EAL_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	_, line, _ := strings.Cut(string(out), "unavailable=")
	line, _, _ = strings.Cut(line, "\n")
	if !strings.HasPrefix(line, "true err=") || !strings.Contains(line, "rte_eal_init(-l 4095") {
		t.Fatalf("child said:\n%s", out)
	}
	t.Log(line)
}
