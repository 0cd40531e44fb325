//go:build linux

package runtime_test

import (
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger logs through t.Log while the test runs.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serverPolicy lets the client reach the server on the given TCP and UDP
// ports; everything else to the server is denied.
func serverPolicy(client *testEndpoint, tcpPorts []int, udpPorts []int) string {
	var ports []string
	for _, p := range tcpPorts {
		ports = append(ports, "{port: "+strconv.Itoa(p)+", protocol: \"TCP\"}")
	}
	for _, p := range udpPorts {
		ports = append(ports, "{port: "+strconv.Itoa(p)+", protocol: \"UDP\"}")
	}
	return `policies: default: "server-ingress": {
	endpointSelector: matchLabels: app: "server"
	ingress: [{
		fromEndpoints: [{matchLabels: app: "` + client.name + `"}]
		toPorts: [{ports: [` + strings.Join(ports, ", ") + `]}]
	}]
}
`
}

// execOutput runs a command and returns its combined output.
func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// setup makes a client and a server endpoint, a configuration where the
// client may reach the server on TCP 8080 and UDP 9000 only, and a daemon
// running it.
func setup(t *testing.T, opts runtime.Options) (topo *topology, client, server *testEndpoint, dir string, d *runtime.Daemon) {
	topo = newTopology(t, "client", "server")
	client, server = topo.eps[0], topo.eps[1]
	dir = t.TempDir()
	writeConfig(t, dir, topo, serverPolicy(client, []int{8080}, []int{9000}))
	opts.ConfigDir = dir
	d = startDaemon(t, opts)
	st := d.Status()
	if st.LastError != nil || st.Generation != 1 {
		t.Fatalf("after start: generation %d, error %+v", st.Generation, st.LastError)
	}
	tcpServer(t, server, 8080)
	tcpServer(t, server, 8081)
	tcpServer(t, client, 8080)
	return topo, client, server, dir, d
}

func TestDaemonEnforcesPolicy(t *testing.T) {
	_, client, server, _, d := setup(t, runtime.Options{})
	expectTCP(t, client, server, 8080, true)
	expectTCP(t, client, server, 8081, false)
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)
	blocked := startUDPStream(t, client, server, 9001, time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if sent, lost := blocked.finish(); sent == 0 || lost != sent {
		t.Errorf("UDP to port 9001: %d of %d datagrams arrived, want none", sent-lost, sent)
	}
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("UDP to port 9000: lost %d of %d", lost, sent)
	}

	st := d.Status()
	if !st.Healthy {
		t.Errorf("status unhealthy: %+v", st)
	}
	attached := make(map[string]string)
	for _, p := range st.Programs {
		for _, a := range p.Attach {
			attached[p.Name] = a.Target + " " + a.Direction + " " + a.Mode
		}
	}
	want := map[string]string{
		"to_default_server":   server.host + " egress tcx",
		"from_default_server": server.host + " ingress tcx",
		"to_default_client":   client.host + " egress tcx",
		"from_default_client": client.host + " ingress tcx",
	}
	for name, w := range want {
		if attached[name] != w {
			t.Errorf("program %s attached at %q, want %q", name, attached[name], w)
		}
	}
	for _, m := range st.Maps {
		if m.Name == "pol_default_server" && (m.Entries != 2 || !m.Sync) {
			t.Errorf("map %s: %d entries (sync %v), want 2 (TCP/8080, UDP/9000 from the client)", m.Name, m.Entries, m.Sync)
		}
	}
}

// TestDaemonLiveChange changes the policy while a UDP stream flows, then
// pushes an invalid configuration: the first changes only the policy map
// and the programs stay; the second changes nothing. No datagram of the
// allowed stream is lost.
func TestDaemonLiveChange(t *testing.T) {
	topo, client, server, dir, d := setup(t, runtime.Options{})
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)
	expectTCP(t, client, server, 8081, false)

	writeConfig(t, dir, topo, serverPolicy(client, []int{8080, 8081}, []int{9000}))
	st := waitStatus(t, d, "generation 2", func(st *runtime.Status) bool { return st.Generation >= 2 || st.LastError != nil })
	if st.LastError != nil {
		t.Fatalf("apply failed: %+v", st.LastError)
	}
	expectTCP(t, client, server, 8081, true)
	expectTCP(t, client, server, 8080, true)
	s.waitFlowing(t, 20)

	// The apply reports what changed: adding a port is one entry in the
	// server's policy map, and no program is loaded.
	writeConfig(t, dir, topo, serverPolicy(client, []int{8080, 8081, 8082}, []int{9000}))
	st = waitStatus(t, d, "generation 3", func(st *runtime.Status) bool { return st.Generation >= 3 || st.LastError != nil })
	if st.LastError != nil {
		t.Fatalf("apply failed: %+v", st.LastError)
	}
	res := st.LastResult
	if len(res.Loaded) != 0 {
		t.Errorf("adding a port loaded programs %v, want none", res.Loaded)
	}
	var changed []string
	for _, m := range res.Maps {
		if m.Changed() {
			changed = append(changed, m.Name)
			if m.Name == "pol_default_server" && (m.Added != 1 || m.Updated != 0 || m.Deleted != 0) {
				t.Errorf("pol_default_server: +%d ~%d -%d, want +1", m.Added, m.Updated, m.Deleted)
			}
		}
	}
	if !slices.Equal(changed, []string{"pol_default_server"}) {
		t.Errorf("maps changed: %v, want only pol_default_server", changed)
	}

	// Invalid configuration: reported at its position, nothing changes.
	gen := d.Status().Generation
	bad := serverPolicy(client, []int{8080}, []int{9000})
	bad = strings.Replace(bad, `fromEndpoints: [{matchLabels: app: "client"}]`, `fromCIDR: ["10.0.0.0/33"]`, 1)
	writeFile(t, filepath.Join(dir, "policies.cue"), "package ebpfc\n\n"+bad)
	st = waitStatus(t, d, "an error", func(st *runtime.Status) bool { return st.LastError != nil })
	if st.Generation != gen {
		t.Errorf("generation %d after an invalid configuration, want %d", st.Generation, gen)
	}
	if len(st.LastError.Errors) == 0 || !strings.Contains(st.LastError.Errors[0], "policies.cue:6:") {
		t.Errorf("error %+v does not point at policies.cue line 6", st.LastError)
	}
	if st.Healthy {
		t.Error("status healthy after a failed apply")
	}
	expectTCP(t, client, server, 8081, true) // the last good policy still runs
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("lost %d of %d allowed datagrams during the changes", lost, sent)
	} else {
		t.Logf("UDP stream: %d datagrams, none lost", sent)
	}
}

// TestDaemonRestart stops the daemon while traffic flows and starts a new
// one on the same pins: traffic never stops, the new daemon loads nothing
// and adopts what runs.
func TestDaemonRestart(t *testing.T) {
	topo, client, server, dir, d := setup(t, runtime.Options{})
	pinDir := d.Status().PinDir
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)
	d.Stop()
	s.waitFlowing(t, 50) // the datapath runs without the daemon
	expectTCP(t, client, server, 8081, false)

	d2 := startDaemon(t, runtime.Options{ConfigDir: dir, PinDir: pinDir})
	st := d2.Status()
	if st.LastError != nil || st.Generation != 1 {
		t.Fatalf("after restart: generation %d, error %+v", st.Generation, st.LastError)
	}
	res, err := d2.Apply(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || len(res.Loaded) != 0 {
		t.Errorf("re-applying after adoption: unchanged %v, loaded %v; want nothing loaded", res.Unchanged, res.Loaded)
	}
	s.waitFlowing(t, 20)
	// The adopted daemon still syncs.
	writeConfig(t, dir, topo, serverPolicy(client, []int{8080, 8081}, []int{9000}))
	waitStatus(t, d2, "generation 2", func(st *runtime.Status) bool { return st.Generation >= 2 })
	expectTCP(t, client, server, 8081, true)
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("lost %d of %d allowed datagrams across the restart", lost, sent)
	} else {
		t.Logf("UDP stream: %d datagrams across the restart, none lost", sent)
	}
}

// TestDaemonUpgrade applies a configuration that changes program code and
// map layouts (a policy starts selecting the client, which adds rule
// cookies): the changed programs replace the old ones at their hooks with no
// datagram lost.
func TestDaemonUpgrade(t *testing.T) {
	_, client, server, dir, d := setup(t, runtime.Options{PollInterval: -1})
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)
	base := serverPolicy(client, []int{8080}, []int{9000})
	upgraded := base + `policies: default: "client-ingress": {
	endpointSelector: matchLabels: app: "client"
	ingress: [{
		fromEndpoints: [{matchLabels: app: "server"}]
		toPorts: [{ports: [{port: 8080, protocol: "TCP"}]}]
	}]
}
`
	sha := func(name string) string {
		for _, p := range d.Status().Programs {
			if p.Name == name {
				return p.SHA256
			}
		}
		return ""
	}
	// Back and forth a few times, so the stream spans several upgrades.
	for i, pol := range []string{upgraded, base, upgraded, base} {
		before := sha("to_default_client")
		writeFile(t, filepath.Join(dir, "policies.cue"), "package ebpfc\n\n"+pol)
		res, err := d.Apply(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(res.Loaded, "to_default_client") || !slices.Contains(res.Replaced, "to_default_client at tc "+client.host+" egress (to_default_client)") {
			t.Errorf("upgrade %d: loaded %v, replaced %v; want to_default_client loaded and replaced at its hook", i, res.Loaded, res.Replaced)
		}
		if sha("to_default_client") == before {
			t.Errorf("upgrade %d: to_default_client's code did not change", i)
		}
		s.waitFlowing(t, 20)
	}
	// Back at the base policy, whose replies the client lets in.
	expectTCP(t, client, server, 8080, true)
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("lost %d of %d allowed datagrams during the upgrades", lost, sent)
	} else {
		t.Logf("UDP stream: %d datagrams across 4 upgrades, none lost", sent)
	}
}

// TestDaemonLegacyTC runs the datapath through clsact and cls_bpf, as on
// kernels without TCX: enforcement, an upgrade in place, and a cleanup that
// removes the qdiscs ebpfd created.
func TestDaemonLegacyTC(t *testing.T) {
	_, client, server, dir, d := setup(t, runtime.Options{TCMode: runtime.TCModeLegacy, PollInterval: -1})
	for _, p := range d.Status().Programs {
		for _, a := range p.Attach {
			if a.Mode != "tc-legacy" {
				t.Errorf("%s attached as %s, want tc-legacy", p.Name, a.Mode)
			}
		}
	}
	expectTCP(t, client, server, 8080, true)
	expectTCP(t, client, server, 8081, false)
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)
	pol := serverPolicy(client, []int{8080}, []int{9000}) + `policies: default: "client-ingress": {
	endpointSelector: matchLabels: app: "client"
	ingress: [{fromEndpoints: [{matchLabels: app: "server"}]}]
}
`
	writeFile(t, filepath.Join(dir, "policies.cue"), "package ebpfc\n\n"+pol)
	res, err := d.Apply(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replaced) == 0 {
		t.Error("nothing replaced")
	}
	s.waitFlowing(t, 20)
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("lost %d of %d allowed datagrams during the upgrade", lost, sent)
	}
	pinDir := d.Status().PinDir
	d.Stop()
	if err := runtime.Cleanup(pinDir, nil); err != nil {
		t.Fatal(err)
	}
	out := tcShow(t, server.host)
	if strings.Contains(out, "clsact") {
		t.Errorf("clsact qdisc left on %s after cleanup:\n%s", server.host, out)
	}
	expectTCP(t, client, server, 8081, true) // nothing enforces any more
}

func tcShow(t *testing.T, dev string) string {
	out, err := execOutput("tc", "qdisc", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDaemonCleanup checks that --cleanup's function detaches and unpins
// everything: traffic the policy denied flows again and the pin directory
// is gone.
func TestDaemonCleanup(t *testing.T) {
	_, client, server, _, d := setup(t, runtime.Options{})
	expectTCP(t, client, server, 8081, false)
	if got := tcxPrograms(t, server.host); !slices.Equal(got, []string{"from_default_server", "to_default_server"}) {
		t.Errorf("programs attached to %s: %v", server.host, got)
	}
	pinDir := d.Status().PinDir
	d.Stop()
	expectTCP(t, client, server, 8081, false) // still enforced without the daemon
	if err := runtime.Cleanup(pinDir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after cleanup (%v)", pinDir, err)
	}
	expectTCP(t, client, server, 8081, true)
	if got := tcxPrograms(t, server.host); len(got) != 0 {
		t.Errorf("programs still attached to %s: %v", server.host, got)
	}
}

// metricValues gathers the daemon's metrics into "name{label=value,...}"
// → value, labels sorted by name.
func metricValues(t *testing.T, d *runtime.Daemon) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetValue() != "" {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

func TestDaemonMetrics(t *testing.T) {
	_, client, server, _, d := setup(t, runtime.Options{})
	for range 3 {
		expectTCP(t, client, server, 8080, true)
	}
	expectTCP(t, client, server, 8081, false)
	got := metricValues(t, d)
	var rule, deny string
	for k := range got {
		if strings.HasPrefix(k, "ebpfc_rule_packets_total{") && strings.Contains(k, "policy=default/server-ingress") {
			rule = k
		}
		if strings.HasPrefix(k, "ebpfc_rule_packets_total{") && strings.Contains(k, "kind=default-deny") && strings.Contains(k, "endpoint=default/server") {
			deny = k
		}
	}
	// Three connections: at least their SYNs and the data packets.
	if got[rule] < 6 {
		t.Errorf("%s = %v, want at least 6 packets", rule, got[rule])
	}
	if got[deny] < 1 {
		t.Errorf("%s = %v, want the denied SYN(s) counted", deny, got[deny])
	}
	if v := got["ebpfc_drop_packets_total{reason=policy denied}"]; v < 1 {
		t.Errorf("drops for policy denied = %v, want at least 1", v)
	}
	for k, want := range map[string]float64{
		"ebpfc_config_generation{}":                     1,
		"ebpfc_map_entries{map=pol_default_server}":     2,
		"ebpfc_last_apply_failed{}":                     0,
		"ebpfc_attachments{state=attached}":             4,
		"ebpfc_map_max_entries{map=pol_default_server}": 16384,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if t.Failed() {
		for _, k := range sortedKeys(got) {
			t.Logf("%s %v", k, got[k])
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// TestDaemonAttachesLateDevice starts with an endpoint whose device does not
// exist yet: its programs wait, and are attached once the device appears.
func TestDaemonAttachesLateDevice(t *testing.T) {
	topo := newTopology(t, "client", "server")
	late := &testEndpoint{name: "late", host: testenv.UniqueName("lxc"), addr: netip.MustParseAddr(topo.subnet.Addr().Next().String())}
	topo.eps = append(topo.eps, late)
	dir := t.TempDir()
	writeConfig(t, dir, topo, serverPolicy(topo.eps[0], []int{8080}, nil))
	d := startDaemon(t, runtime.Options{ConfigDir: dir})
	st := d.Status()
	var pending int
	for _, p := range st.Programs {
		for _, a := range p.Attach {
			if a.Pending {
				pending++
				if a.Target != late.host {
					t.Errorf("%s waits for %s", p.Name, a.Target)
				}
			}
		}
	}
	if pending != 2 || st.Healthy {
		t.Fatalf("%d attachments waiting (healthy %v), want the late endpoint's 2", pending, st.Healthy)
	}
	ip := testenv.RequireTool(t, "ip")
	testenv.Run(t, ip, "link", "add", late.host, "type", "veth", "peer", "name", late.host+"p")
	t.Cleanup(func() { exec.Command(ip, "link", "del", late.host).Run() })
	st = waitStatus(t, d, "the late device attached", func(st *runtime.Status) bool { return st.Healthy })
	if got := tcxPrograms(t, late.host); !slices.Equal(got, []string{"from_default_late", "to_default_late"}) {
		t.Errorf("programs attached to %s: %v", late.host, got)
	}
}

// TestDaemonXDP attaches the node's XDP prefilter to a device the node
// names (the bridge).
func TestDaemonXDP(t *testing.T) {
	topo := newTopology(t, "client", "server")
	client, server := topo.eps[0], topo.eps[1]
	dir := t.TempDir()
	writeConfig(t, dir, topo, serverPolicy(client, []int{8080}, nil))
	cluster, err := os.ReadFile(filepath.Join(dir, "cluster.cue"))
	if err != nil {
		t.Fatal(err)
	}
	withXDP := strings.Replace(string(cluster), `nodes: "node-a": {addresses: ["192.0.2.1"]}`,
		`nodes: "node-a": {addresses: ["192.0.2.1"], devices: ["`+topo.bridge+`"], features: xdp: true}`, 1)
	if withXDP == string(cluster) {
		t.Fatal("the node declaration was not found")
	}
	writeFile(t, filepath.Join(dir, "cluster.cue"), withXDP)
	d := startDaemon(t, runtime.Options{ConfigDir: dir, PollInterval: -1})
	var mode string
	for _, p := range d.Status().Programs {
		for _, a := range p.Attach {
			if a.Hook == "xdp" {
				mode = a.Target + " " + a.Mode
			}
		}
	}
	if mode != topo.bridge+" xdp-native" && mode != topo.bridge+" xdp-generic" {
		t.Fatalf("XDP attached at %q, want %s (native or generic)", mode, topo.bridge)
	}
	l, err := netlink.LinkByName(topo.bridge)
	if err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x == nil || !x.Attached || x.ProgId == 0 {
		t.Fatalf("no XDP program on %s: %+v", topo.bridge, x)
	}
	tcpServer(t, server, 8080)
	expectTCP(t, client, server, 8080, true) // the prefilter passes well-formed packets
	pinDir := d.Status().PinDir
	d.Stop()
	if err := runtime.Cleanup(pinDir, nil); err != nil {
		t.Fatal(err)
	}
	if l, err = netlink.LinkByName(topo.bridge); err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		t.Errorf("XDP program left on %s after cleanup", topo.bridge)
	}
}
