//go:build linux

package runtime_test

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// statusEnv makes the test binary ask the daemon at the socket it names for
// its status, print the outcome and exit (see TestMain).
const statusEnv = "EBPFD_TEST_STATUS"

func helperStatus(sock string) {
	c, err := runtime.Dial(sock)
	if err == nil {
		_, err = c.Status()
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("ok")
	os.Exit(0)
}

func TestControlSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "ebpfd.sock")
	topo, client, _, dir, _ := setup(t, runtime.Options{PollInterval: -1, Socket: sock})
	for path, want := range map[string]os.FileMode{filepath.Dir(sock): os.ModeDir | 0o700, sock: os.ModeSocket | 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: mode %v uid %d, want %v owned by root", path, st.Mode(), st.Sys().(*syscall.Stat_t).Uid, want)
		}
	}

	call := func() *runtime.Client {
		c, err := runtime.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	st, err := call().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "node-a" || st.Generation != 1 || !st.Healthy || len(st.Programs) != 8 {
		t.Errorf("status: node %s generation %d healthy %v, %d programs", st.Node, st.Generation, st.Healthy, len(st.Programs))
	}

	// An apply with errors changes nothing and names every error's position.
	writeFile(t, filepath.Join(dir, "policies.cue"), "package ebpfc\n\npolicies: default: p: {\n\tendpointSelector: {}\n\tingress: [{toPorts: [{ports: [{port: 70000}]}]}]\n}\n")
	_, err = call().Apply(dir)
	var re *runtime.RequestError
	if !errors.As(err, &re) || len(re.Errors) != 1 || !strings.Contains(re.Errors[0], "policies.cue:5:") {
		t.Fatalf("apply of a bad configuration: %v (%+v), want one error at policies.cue:5", err, re)
	}
	if _, err := call().Apply("relative/dir"); err == nil || !strings.Contains(err.Error(), "must be absolute") {
		t.Errorf("apply of a relative path: %v", err)
	}
	writeConfig(t, dir, topo, serverPolicy(client, []int{8080, 8081}, []int{9000}))
	res, err := call().Apply(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation != 2 || len(res.Maps) == 0 {
		t.Errorf("apply: generation %d, maps %+v", res.Generation, res.Maps)
	}
	st, _ = call().Status()
	if st.LastError != nil || st.Generation != 2 {
		t.Errorf("after a good apply: generation %d, error %+v", st.Generation, st.LastError)
	}

	// Only root: make the socket reachable to everyone for the length of
	// the check, so that only the peer credentials stand in the way.
	exe := filepath.Join(t.TempDir(), "runtime.test")
	copyFile(t, os.Args[0], exe, 0o755)
	// Open every directory on the way to the socket and the binary.
	// (All of them lie inside this test's temporary directories.)
	for _, p := range []string{filepath.Dir(exe), filepath.Dir(sock), filepath.Dir(filepath.Dir(sock)), filepath.Dir(filepath.Dir(filepath.Dir(sock)))} {
		if !strings.HasPrefix(p, filepath.Join(os.TempDir(), "TestControlSocket")) {
			t.Fatalf("%s is not a directory of this test", p)
		}
		os.Chmod(p, 0o755)
	}
	os.Chmod(sock, 0o666)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), statusEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	os.Chmod(filepath.Dir(sock), 0o700)
	os.Chmod(sock, 0o600)
	t.Logf("status as uid 65534: %v: %s", err, out)
	if !strings.Contains(string(out), "root only") {
		t.Errorf("status as uid 65534: %q, want a refusal", out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestControlMonitor streams events through the control socket with a
// filter.
func TestControlMonitor(t *testing.T) {
	testenv.RequireKernel(t)
	cgroup := filepath.Join(runtime.DefaultCgroup, testenv.UniqueName("ebpfc-test-"))
	if err := os.Mkdir(cgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cgroup) })
	sock := filepath.Join(t.TempDir(), "ebpfd.sock")
	d := startDaemon(t, runtime.Options{Cgroup: cgroup, Socket: sock})
	rec := encodeEvent(testEventLayout(), testEvent{typ: 2, verdict: 1, proto: 6, reason: 2, family: 4, dport: 80, endpoint: 1, identity: 4242, cookie: 2,
		saddr: netip.MustParseAddr("10.1.0.10"), daddr: netip.MustParseAddr("192.0.2.9")})
	if _, err := d.ApplyArtifacts(connectArtifacts(t, rec, 1), "hand-built"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		filter runtime.EventFilter
		want   bool
	}{
		{runtime.EventFilter{Type: "drop", Endpoint: "default/server"}, true},
		{runtime.EventFilter{Verdict: "allowed"}, false},
	} {
		c, err := runtime.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan runtime.Event, 1)
		go c.Monitor(tt.filter, func(ev runtime.Event) bool { got <- ev; return false })
		time.Sleep(100 * time.Millisecond) // let the subscription start
		connectFromCgroup(t, cgroup, "192.0.2.9:80")
		select {
		case ev := <-got:
			if !tt.want {
				t.Errorf("filter %+v passed %s", tt.filter, ev)
			} else if ev.Endpoint != "default/server" || ev.Destination != "192.0.2.9:80" || ev.IdentityName != "default/client" {
				t.Errorf("event %+v", ev)
			}
		case <-time.After(500 * time.Millisecond):
			if tt.want {
				t.Errorf("filter %+v: no event", tt.filter)
			}
		}
		c.Close()
	}
}
