//go:build linux

package testenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// MountBPFFS makes sure a BPF filesystem is mounted at /sys/fs/bpf.
func MountBPFFS(tb testing.TB) {
	tb.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return
	}
	if err := os.MkdirAll("/sys/fs/bpf", 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
		tb.Fatalf("mount bpffs at /sys/fs/bpf: %v", err)
	}
}

// UniqueName returns prefix followed by random hex, for pin directories and
// network namespaces that must not collide with a parallel run.
func UniqueName(prefix string) string { return fmt.Sprintf("%s%08x", prefix, rand.Uint32()) }

// Run runs a command and returns its standard output, failing tb with the
// command's output when it fails.
func Run(tb testing.TB, name string, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// NewNetns creates a network namespace with a unique name that is deleted,
// with everything in it, when the test ends (also when it fails).
func NewNetns(tb testing.TB) string {
	tb.Helper()
	ip := RequireTool(tb, "ip")
	ns := UniqueName("ebpfc-test-")
	Run(tb, ip, "netns", "add", ns)
	tb.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	return ns
}
