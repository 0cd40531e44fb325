//go:build linux

package runtime_test

// The real ebpfd and ebpfc binaries, end to end: start, apply good and bad
// configurations, scrape metrics, stop with SIGTERM while traffic flows,
// start again (adopting), and clean up.

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfc/ebpfc/internal/testenv"
)

// buildCommands builds ebpfd and ebpfc into a temporary directory.
func buildCommands(t *testing.T) (ebpfd, ebpfc string) {
	t.Helper()
	goTool := testenv.RequireTool(t, "go")
	bin := t.TempDir()
	cmd := exec.Command(goTool, "build", "-o", bin+"/", "../cmd/ebpfd", "../cmd/ebpfc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(bin, "ebpfd"), filepath.Join(bin, "ebpfc")
}

type daemonProcess struct {
	cmd     *exec.Cmd
	logs    *syncBuffer
	metrics chan string
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

var metricsAddrRE = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// startEbpfd starts the binary and waits until its socket answers.
func startEbpfd(t *testing.T, ebpfd, ebpfc string, args ...string) *daemonProcess {
	t.Helper()
	p := &daemonProcess{logs: &syncBuffer{mu: make(chan struct{}, 1)}, metrics: make(chan string, 1)}
	p.cmd = exec.Command(ebpfd, args...)
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := metricsAddrRE.FindStringSubmatch(line); m != nil {
				p.metrics <- m[1]
			}
		}
	}()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		pw.Close()
		if t.Failed() {
			t.Logf("ebpfd logs:\n%s", p.logs.String())
		}
	})
	sock := args[slicesIndex(args, "--socket")+1]
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			if out, err := exec.Command(ebpfc, "status", "--socket", sock).CombinedOutput(); err == nil && strings.Contains(string(out), "generation") {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ebpfd did not start; logs:\n%s", p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *daemonProcess) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("ebpfd after SIGTERM: %v", err)
	}
}

func slicesIndex(xs []string, x string) int {
	for i, s := range xs {
		if s == x {
			return i
		}
	}
	return -1
}

func runCommand(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestBinaries(t *testing.T) {
	testenv.RequireKernel(t)
	ebpfd, ebpfc := buildCommands(t)
	topo := newTopology(t, "client", "server")
	client, server := topo.eps[0], topo.eps[1]
	dir := t.TempDir()
	writeConfig(t, dir, topo, serverPolicy(client, []int{8080}, []int{9000}))
	tcpServer(t, server, 8080)
	tcpServer(t, server, 8081)
	tcpServer(t, server, 8083)
	pinDir := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-test-"))
	sock := filepath.Join(t.TempDir(), "ebpfd.sock")
	// Watching is off (--poll 0): the test applies through the socket,
	// and the in-process tests cover the watcher.
	args := []string{"--config", dir, "--node", "node-a", "--pin-dir", pinDir, "--socket", sock, "--poll", "0", "--metrics-addr", "127.0.0.1:0"}
	t.Cleanup(func() { exec.Command(ebpfd, "--cleanup", "--node", "node-a", "--pin-dir", pinDir).Run() })

	p := startEbpfd(t, ebpfd, ebpfc, args...)
	out, code := runCommand(t, ebpfc, "status", "--socket", sock)
	if code != 0 || !strings.Contains(out, "node node-a: generation 1, healthy") || !strings.Contains(out, "to_default_server") {
		t.Errorf("ebpfc status (exit %d):\n%s", code, out)
	}
	expectTCP(t, client, server, 8080, true)
	expectTCP(t, client, server, 8081, false)
	expectTCP(t, client, server, 8083, false)
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)

	writeConfig(t, dir, topo, serverPolicy(client, []int{8080, 8081}, []int{9000}))
	out, code = runCommand(t, ebpfc, "apply", dir, "--socket", sock)
	if code != 0 || !regexp.MustCompile(`map pol_default_server\s+\+1 ~0 -0 in 1 ops`).MatchString(out) {
		t.Errorf("ebpfc apply (exit %d):\n%s", code, out)
	}
	expectTCP(t, client, server, 8081, true)
	bad := t.TempDir()
	writeConfig(t, bad, topo, "policies: default: p: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: 70000}]}]}]}\n")
	out, code = runCommand(t, ebpfc, "apply", bad, "--socket", sock)
	if code != 1 || !strings.Contains(out, filepath.Join(bad, "policies.cue")+":3:") || !strings.Contains(out, "nothing was changed") {
		t.Errorf("ebpfc apply of a bad configuration (exit %d):\n%s", code, out)
	}
	out, _ = runCommand(t, ebpfc, "status", "--socket", sock)
	if !strings.Contains(out, "unhealthy") || !strings.Contains(out, "policies.cue:3:") {
		t.Errorf("ebpfc status after a failed apply:\n%s", out)
	}
	expectTCP(t, client, server, 8081, true)

	addr := <-p.metrics
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"ebpfc_config_generation 2", "ebpfc_last_apply_failed 1", `ebpfc_map_entries{map="pol_default_server"} 3`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	p.stop(t)
	s.waitFlowing(t, 50)
	expectTCP(t, client, server, 8081, true)
	// Started again, on the last good configuration: adopts, loads nothing.
	writeConfig(t, dir, topo, serverPolicy(client, []int{8080, 8081}, []int{9000}))
	p = startEbpfd(t, ebpfd, ebpfc, args...)
	out, _ = runCommand(t, ebpfc, "status", "--socket", sock, "--json")
	if !strings.Contains(out, `"generation": 2`) || !strings.Contains(out, `"unchanged": true`) {
		t.Errorf("status after the restart:\n%s", out)
	}
	s.waitFlowing(t, 20)
	p.stop(t)
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("lost %d of %d allowed datagrams across two restarts of the binary", lost, sent)
	} else {
		t.Logf("UDP stream: %d datagrams across two restarts of the binary, none lost", sent)
	}
	out, code = runCommand(t, ebpfd, "--cleanup", "--node", "node-a", "--pin-dir", pinDir)
	if code != 0 {
		t.Errorf("ebpfd --cleanup (exit %d):\n%s", code, out)
	}
	if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
		t.Errorf("%s left after --cleanup", pinDir)
	}
	expectTCP(t, client, server, 8083, true) // nothing enforces the policy any more
}
