package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// selfCPU is the CPU time (user and system) this process has used: the
// in-process gateways' and the harness's.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// userHZ is the unit of /proc's CPU times, USER_HZ, 100 on Linux.
const userHZ = 100

// pidCPU is the CPU time (user and system) process pid has used, from
// /proc/PID/stat (proc(5): utime and stime, fields 14 and 15).
func pidCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

func parseStatCPU(stat string) (time.Duration, error) {
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: /proc stat without a command name")
	}
	f := strings.Fields(stat[i+1:]) // from field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: /proc stat with %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: /proc stat times %q %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// machineBusy returns the time all CPUs of the machine have spent busy
// since boot: every state of /proc/stat's "cpu" line but idle and iowait
// (proc(5)).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachineBusy(string(b))
}

func parseMachineBusy(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("bench: /proc/stat starts %q", line)
	}
	// user nice system idle iowait irq softirq steal
	var busy uint64
	for i := range 8 {
		t, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/stat cpu field %d %q", i+1, f[i+1])
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += t
		}
	}
	return time.Duration(busy) * time.Second / userHZ, nil
}

// busyCPUs measures how many of the machine's CPUs f kept busy on
// average, from /proc/stat; 0 if it cannot be read.
func busyCPUs(f func()) float64 {
	b0, err0 := machineBusy()
	t0 := time.Now()
	f()
	b1, err1 := machineBusy()
	el := time.Since(t0)
	if err0 != nil || err1 != nil || el <= 0 {
		return 0
	}
	return (b1 - b0).Seconds() / el.Seconds()
}
