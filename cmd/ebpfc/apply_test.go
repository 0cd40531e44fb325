//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

const webPolicy = `package ebpfc

policies: default: web: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{toPorts: [{ports: [{port: 80, protocol: "TCP"}]}]}]
}
`

// startTestDaemon runs a daemon for node-a with no configuration yet, on
// its own pins and socket. The endpoint's device does not exist, so its
// programs wait to be attached: apply and status work all the same.
func startTestDaemon(t *testing.T) string {
	t.Helper()
	testenv.RequireKernel(t)
	pinDir := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-test-"))
	sock := filepath.Join(t.TempDir(), "ebpfd.sock")
	d, err := runtime.New(runtime.Options{Node: "node-a", PinDir: pinDir, Socket: sock, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		if err := runtime.Cleanup(pinDir, nil); err != nil {
			t.Error(err)
		}
	})
	return sock
}

func TestApplyAndStatus(t *testing.T) {
	sock := startTestDaemon(t)
	dir := writeDir(t, map[string]string{"cluster.cue": goodCluster, "policies.cue": webPolicy})
	code, out, errOut := runCLI("apply", dir, "--socket", sock)
	if code != exitOK {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"generation 1 applied from " + dir, "programs loaded (6)", "waiting for their device (2)", "map pol_default_web", "(created)"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("apply", dir, "--socket", sock)
	if code != exitOK || !strings.Contains(out, "generation 1: unchanged") {
		t.Errorf("second apply: exit %d\n%s", code, out)
	}

	bad := writeDir(t, map[string]string{"cluster.cue": goodCluster, "policies.cue": strings.Replace(webPolicy, "port: 80", "port: 80000", 1)})
	code, out, errOut = runCLI("apply", bad, "--socket", sock)
	if code != exitConfig || !strings.Contains(errOut, filepath.Join(bad, "policies.cue")+":5:") || !strings.Contains(errOut, "nothing was changed") {
		t.Errorf("apply of a bad configuration: exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = runCLI("status", "--socket", sock)
	if code != exitOK {
		t.Fatalf("status: exit %d", code)
	}
	for _, want := range []string{
		"node node-a: generation 1, unhealthy",
		"source:  " + dir,
		"last error at ",
		filepath.Join(bad, "policies.cue") + ":5:",
		"to_default_web ",
		"tc lxc-web egress (waiting for the device)",
		"tail-call slot 17512", // default/web's index (4378) × 4: ingress, IPv4
		"pol_default_web",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("status", "--socket", sock, "--json")
	if code != exitOK || !strings.Contains(out, `"generation": 1`) {
		t.Errorf("status --json: exit %d\n%s", code, out)
	}
}

func TestDaemonClientUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"apply"}, exitUsage, "want exactly one directory"},
		{[]string{"apply", "a", "b"}, exitUsage, "want exactly one directory"},
		{[]string{"status", "x"}, exitUsage, "takes no arguments"},
		{[]string{"monitor", "--type", "drops"}, exitUsage, `event type "drops"`},
		{[]string{"monitor", "--verdict", "deny"}, exitUsage, `verdict "deny"`},
		{[]string{"status", "--socket", missing}, exitUsage, "is ebpfd running"},
		{[]string{"monitor", "--socket", missing}, exitUsage, "is ebpfd running"},
		{[]string{"apply", ".", "--socket", missing}, exitUsage, "is ebpfd running"},
	} {
		code, _, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

// TestMonitorStops checks that monitor connects and ends when the daemon
// goes away (the event stream itself is tested in package runtime, with a
// datapath that emits events).
func TestMonitorStops(t *testing.T) {
	testenv.RequireKernel(t)
	pinDir := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-test-"))
	sock := filepath.Join(t.TempDir(), "ebpfd.sock")
	d, err := runtime.New(runtime.Options{Node: "node-a", PinDir: pinDir, Socket: sock, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runtime.Cleanup(pinDir, nil) })
	done := make(chan int)
	go func() {
		code, _, _ := runCLI("monitor", "--socket", sock, "--type", "drop")
		done <- code
	}()
	time.Sleep(200 * time.Millisecond)
	d.Stop()
	select {
	case code := <-done:
		if code != exitInternal {
			t.Errorf("monitor after the daemon stopped: exit %d, want %d (connection lost)", code, exitInternal)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("monitor did not end when the daemon stopped")
	}
}
