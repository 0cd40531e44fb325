//go:build linux

package runtime_test

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/runtime"
)

// incrementalPolicies: the server takes TCP 8080 from app=client; the
// client may only open connections to app=server on TCP 8080, so every
// endpoint with app=client is enforced on egress and has tail-called
// programs and a policy map.
const incrementalPolicies = `policies: default: "server-ingress": {
	endpointSelector: matchLabels: app: "server"
	ingress: [{
		fromEndpoints: [{matchLabels: app: "client"}]
		toPorts: [{ports: [{port: 8080, protocol: "TCP"}]}]
	}]
}
policies: default: "client-egress": {
	endpointSelector: matchLabels: app: "client"
	egress: [{
		toEndpoints: [{matchLabels: app: "server"}]
		toPorts: [{ports: [{port: 8080, protocol: "TCP"}]}]
	}]
}
`

// writeEndpoints writes the configuration with the given endpoints of the
// topology: each has app=<its name>, except the ones in clients, which
// have app=client and role=<their name> (a label set of their own).
func writeEndpoints(t *testing.T, dir string, topo *topology, eps []*testEndpoint, clients ...*testEndpoint) {
	t.Helper()
	writeEndpointsWith(t, dir, topo, incrementalPolicies, eps, clients...)
}

// writeEndpointsWith is writeEndpoints with the given policies.
func writeEndpointsWith(t *testing.T, dir string, topo *topology, policies string, eps []*testEndpoint, clients ...*testEndpoint) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "package ebpfc\n\ncluster: {name: \"e2e\", podCIDRs: [%q], serviceCIDRs: [\"10.96.0.0/12\"]}\n", topo.subnet.String())
	b.WriteString("nodes: \"node-a\": {addresses: [\"192.0.2.1\"]}\n")
	for _, ep := range eps {
		labels := fmt.Sprintf("{app: %q}", ep.name)
		if slices.Contains(clients, ep) {
			labels = fmt.Sprintf("{app: \"client\", role: %q}", ep.name)
		}
		fmt.Fprintf(&b, "endpoints: default: %q: {node: \"node-a\", interface: %q, addresses: [%q], labels: %s}\n", ep.name, ep.host, ep.addr.String(), labels)
	}
	writeFile(t, filepath.Join(dir, "cluster.cue"), b.String())
	writeFile(t, filepath.Join(dir, "policies.cue"), "package ebpfc\n\n"+policies)
}

// TestIncrementalAddEndpoint adds an endpoint to a running node: the daemon
// takes the incremental path, loads only the new endpoint's programs, and
// leaves the kernel exactly as a full apply of the same configuration
// would (map contents, program array slots, what each hook runs); a
// restarted daemon, and a full apply afterwards, find nothing to do. Removing the endpoint again takes
// the full path and empties its slots.
func TestIncrementalAddEndpoint(t *testing.T) {
	topo := newTopology(t, "client", "server", "extra")
	client, server, extra := topo.eps[0], topo.eps[1], topo.eps[2]
	client.name = "client"
	dir := t.TempDir()
	writeEndpoints(t, dir, topo, []*testEndpoint{client, server})
	pinDir := filepath.Join("/sys/fs/bpf", "ebpfc-inc-"+filepath.Base(dir))
	t.Cleanup(func() { runtime.Cleanup(pinDir, nil) })
	d := startDaemon(t, runtime.Options{ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
	if st := d.Status(); st.LastError != nil || st.Generation != 1 {
		t.Fatalf("after start: generation %d, error %+v", st.Generation, st.LastError)
	}
	tcpServer(t, server, 8080)
	tcpServer(t, server, 8081)

	// The client's egress policy names app=server, the server's ingress
	// policy app=client: the new endpoint (app=client, a label set of its
	// own) is enforced on egress, and the server's policy map gains its
	// identity.
	writeEndpoints(t, dir, topo, []*testEndpoint{client, server, extra}, extra)
	res, err := d.Apply(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Incremental {
		t.Fatalf("adding an endpoint took the full path: %+v", res)
	}
	wantLoaded := []string{"from_default_extra", "from_default_extra_ipv4", "from_default_extra_ipv6", "to_default_extra", "to_default_extra_ipv4", "to_default_extra_ipv6"}
	if !slices.Equal(res.Loaded, wantLoaded) {
		t.Errorf("loaded %v, want the new endpoint's programs %v", res.Loaded, wantLoaded)
	}
	changed := make(map[string]runtime.MapChange)
	for _, c := range res.Maps {
		changed[c.Name] = c
	}
	if c := changed["ipcache"]; c.Added != 1 || c.Updated+c.Deleted != 0 {
		t.Errorf("ipcache: %+v, want the new endpoint's address added", c)
	}
	if c := changed["pol_default_extra"]; !c.Created || c.Added == 0 {
		t.Errorf("pol_default_extra: %+v, want it created with entries", c)
	}
	if c := changed["pol_default_server"]; c.Added == 0 || c.Updated+c.Deleted != 0 {
		t.Errorf("pol_default_server: %+v, want entries for the new identity added", c)
	}
	if c := changed["pol_default_client"]; c.Changed() {
		t.Errorf("pol_default_client changed: %+v (its peers are app=server)", c)
	}
	t.Logf("incremental apply: config %v, compute %v, compile %v, kernel %v (load %v), total %v",
		res.ConfigTime, res.ComputeTime, res.CompileTime, res.KernelTime, res.LoadTime, res.TotalTime)

	full := compileFull(t, dir)
	checkKernel(t, pinDir, full)
	expectTCP(t, extra, server, 8080, true)
	expectTCP(t, extra, server, 8081, false)
	expectTCP(t, client, server, 8080, true)

	// A restarted daemon adopts the state and its journal: the full apply
	// of the same configuration loads and attaches nothing.
	d.Stop()
	d = startDaemon(t, runtime.Options{ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
	st := d.Status()
	if st.LastError != nil || st.LastResult == nil || len(st.LastResult.Loaded)+len(st.LastResult.Attached) > 0 {
		t.Errorf("after a restart: %+v, error %+v; want nothing loaded or attached", st.LastResult, st.LastError)
	}
	checkKernel(t, pinDir, full)

	again, err := d.ApplyArtifacts(full, "full")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Loaded) > 0 || len(again.Attached)+len(again.Detached) > 0 || slices.ContainsFunc(again.Maps, runtime.MapChange.Changed) {
		t.Errorf("a full apply after the incremental one changed something: %+v", again)
	}

	// Removing the endpoint is not incremental; its slots are emptied.
	writeEndpoints(t, dir, topo, []*testEndpoint{client, server})
	if _, err := d.Apply(dir); err != nil {
		t.Fatal(err)
	}
	res, err = d.Apply(dir)
	if err != nil || !res.Incremental || !res.Unchanged {
		t.Errorf("applying the running configuration again: %+v, %v; want unchanged through the incremental path", res, err)
	}
	checkKernel(t, pinDir, compileFull(t, dir))
	expectTCP(t, client, server, 8080, true)
}

// compileFull compiles the configuration in dir for node-a.
func compileFull(t *testing.T, dir string) *runtime.Artifacts {
	t.Helper()
	arts, err := compiler.CompileDir(dir, compiler.Options{Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := runtime.ParseArtifacts(dir, arts[0].Files)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// checkKernel checks that the datapath pinned in pinDir is what the full
// artifacts want: every map the configuration owns holds exactly maps.json's
// entries, the program array holds, in exactly the manifest's slots, the
// programs of the manifest (by kernel tag), and each tc hook runs the
// manifest's program.
func checkKernel(t *testing.T, pinDir string, a *runtime.Artifacts) {
	t.Helper()
	// The kernel's tags of the full compile's programs, loaded on their
	// own (a tag does not depend on the maps a program uses).
	coll, err := ebpf.NewCollection(a.Spec)
	if err != nil {
		t.Fatal(err)
	}
	tags := make(map[string]string)
	for name, p := range coll.Programs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		tags[name] = info.Tag
	}
	coll.Close()
	for _, dm := range a.Maps.Maps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, dm.Name), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := make(map[string]string)
		for _, e := range dm.Entries {
			k, v, err := e.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			want[string(k)] = string(v)
		}
		got := make(map[string]string)
		var k, v []byte
		it := m.Iterate()
		for it.Next(&k, &v) {
			got[string(k)] = string(v)
		}
		m.Close()
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("map %s: %d entries in the kernel, %d in the full compile", dm.Name, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("map %s key %x: kernel %x, full compile %x", dm.Name, k, got[k], v)
			}
		}
	}
	for _, mm := range a.Manifest.Maps {
		if mm.Type != "prog_array" {
			continue
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, mm.Name), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range mm.MaxEntries {
			want := ""
			if int(i) < len(mm.Slots) {
				want = mm.Slots[i]
			}
			var id uint32
			err := m.Lookup(i, &id)
			if want == "" {
				if err == nil {
					t.Errorf("%s slot %d holds program %d, the full compile leaves it empty", mm.Name, i, id)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s slot %d: %v, want %s", mm.Name, i, err, want)
				continue
			}
			if tag := programTag(t, ebpf.ProgramID(id)); tag != tags[want] {
				t.Errorf("%s slot %d runs tag %s, want %s's %s", mm.Name, i, tag, want, tags[want])
			}
		}
		m.Close()
	}
	for _, p := range a.Manifest.Programs {
		for _, at := range p.Attach {
			ifc, err := net.InterfaceByName(at.Device)
			if err != nil {
				t.Fatal(err)
			}
			typ := ebpf.AttachTCXIngress
			if at.Direction == "egress" {
				typ = ebpf.AttachTCXEgress
			}
			q, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: typ})
			if err != nil {
				t.Fatal(err)
			}
			var running []string
			for _, ap := range q.Programs {
				running = append(running, programTag(t, ap.ID))
			}
			if !slices.Equal(running, []string{tags[p.Name]}) {
				t.Errorf("%s %s runs tags %v, want %s's %s", at.Device, at.Direction, running, p.Name, tags[p.Name])
			}
		}
	}
}

func programTag(t *testing.T, id ebpf.ProgramID) string {
	t.Helper()
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(gone)"
		}
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Tag
}

// rulePolicies: the server takes the TCP ports tcp and UDP 9000 from
// app=client (audited when audit is set); app=client may reach app=server
// on any port. first, when not empty, is a policy sorted before them, and
// serverEgress, when set, enforces the server's egress (it may reach
// app=client).
func rulePolicies(tcp []int, audit bool, first string, serverEgress bool) string {
	var ports []string
	for _, p := range tcp {
		ports = append(ports, fmt.Sprintf("{port: %d, protocol: \"TCP\"}", p))
	}
	var b strings.Builder
	b.WriteString(first)
	fmt.Fprintf(&b, `policies: default: "server-ingress": {
	endpointSelector: matchLabels: app: "server"
	audit: %v
	ingress: [{
		fromEndpoints: [{matchLabels: app: "client"}]
		toPorts: [{ports: [%s, {port: 9000, protocol: "UDP"}]}]
	}]
}
policies: default: "client-egress": {
	endpointSelector: matchLabels: app: "client"
	egress: [{toEndpoints: [{matchLabels: app: "server"}]}]
}
`, audit, strings.Join(ports, ", "))
	if serverEgress {
		b.WriteString(`policies: default: "server-egress": {
	endpointSelector: matchLabels: app: "server"
	egress: [{toEndpoints: [{matchLabels: app: "client"}]}]
}
`)
	}
	return b.String()
}

// TestIncrementalRuleChange changes policies of a running node while a UDP
// stream flows: a port added, a rule inserted before the others (every
// later rule's cookie moves), the server's egress enforced and opened
// again, and its policy audited. Each takes the incremental path, loads
// only the programs whose code changes (none for rules; the server's
// programs of the direction whose enforcement or audit changes), and
// leaves the kernel exactly as a full apply of the same configuration
// would. No datagram of the stream is lost; a restarted daemon and a full
// apply afterwards find nothing to do.
func TestIncrementalRuleChange(t *testing.T) {
	topo := newTopology(t, "client", "server")
	client, server := topo.eps[0], topo.eps[1]
	client.name = "client"
	eps := []*testEndpoint{client, server}
	dir := t.TempDir()
	writeEndpointsWith(t, dir, topo, rulePolicies([]int{8080}, false, "", false), eps, client)
	pinDir := filepath.Join("/sys/fs/bpf", "ebpfc-rule-"+filepath.Base(dir))
	t.Cleanup(func() { runtime.Cleanup(pinDir, nil) })
	d := startDaemon(t, runtime.Options{ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
	if st := d.Status(); st.LastError != nil || st.Generation != 1 {
		t.Fatalf("after start: generation %d, error %+v", st.Generation, st.LastError)
	}
	for _, port := range []int{8080, 8081, 8082} {
		tcpServer(t, server, port)
	}
	tcpServer(t, client, 7000)
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)
	expectTCP(t, client, server, 8081, false)

	first := `policies: default: "aaa-first": {
	endpointSelector: matchLabels: app: "server"
	ingress: [{fromEndpoints: [{matchLabels: app: "client"}], toPorts: [{ports: [{port: 9999, protocol: "TCP"}]}]}]
}
`
	steps := []struct {
		name     string
		policies string
		loaded   []string // the programs loaded, sorted
		check    func()
	}{
		{name: "port added", policies: rulePolicies([]int{8080, 8081}, false, "", false),
			check: func() { expectTCP(t, client, server, 8081, true) }},
		{name: "rule inserted before", policies: rulePolicies([]int{8080, 8081}, false, first, false),
			check: func() { expectTCP(t, client, server, 8082, false) }},
		{name: "server egress enforced", policies: rulePolicies([]int{8080, 8081}, false, first, true),
			loaded: []string{"from_default_server", "from_default_server_ipv4", "from_default_server_ipv6"},
			check:  func() { expectTCP(t, server, client, 7000, true) }},
		{name: "server egress open again", policies: rulePolicies([]int{8080, 8081}, false, first, false),
			loaded: []string{"from_default_server", "from_default_server_ipv4", "from_default_server_ipv6"},
			check:  func() { expectTCP(t, server, client, 7000, true) }},
		{name: "audited", policies: rulePolicies([]int{8080}, true, "", false),
			loaded: []string{"to_default_server_ipv4", "to_default_server_ipv6"},
			// A default deny that audits lets the connection through.
			check: func() { expectTCP(t, client, server, 8082, true) }},
	}
	for _, step := range steps {
		writeEndpointsWith(t, dir, topo, step.policies, eps, client)
		res, err := d.Apply(dir)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if !res.Incremental || !slices.Equal(res.Loaded, step.loaded) {
			t.Errorf("%s: incremental %v, loaded %v; want the incremental path loading %v", step.name, res.Incremental, res.Loaded, step.loaded)
		}
		var changed []string
		for _, m := range res.Maps {
			if m.Changed() {
				changed = append(changed, fmt.Sprintf("%s +%d ~%d -%d", m.Name, m.Added, m.Updated, m.Deleted))
			}
		}
		t.Logf("%s: maps %v, replaced %v; compute %v, compile %v, kernel %v", step.name, changed, res.Replaced, res.ComputeTime, res.CompileTime, res.KernelTime)
		checkKernel(t, pinDir, compileFull(t, dir))
		step.check()
		s.waitFlowing(t, 10)
	}
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("lost %d of %d allowed datagrams during the changes", lost, sent)
	} else {
		t.Logf("UDP stream: %d datagrams, none lost", sent)
	}

	full := compileFull(t, dir)
	d.Stop()
	d = startDaemon(t, runtime.Options{ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
	if st := d.Status(); st.LastError != nil || st.LastResult == nil || len(st.LastResult.Loaded)+len(st.LastResult.Attached) > 0 {
		t.Errorf("after a restart: %+v, error %+v; want nothing loaded or attached", st.LastResult, st.LastError)
	}
	again, err := d.ApplyArtifacts(full, "full")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Loaded) > 0 || len(again.Attached)+len(again.Detached) > 0 || slices.ContainsFunc(again.Maps, runtime.MapChange.Changed) {
		t.Errorf("a full apply after the incremental ones changed something: %+v", again)
	}
	checkKernel(t, pinDir, full)
}

// endpointIndexHash is the index an endpoint prefers (docs/ebpfd.md,
// "Stable numbers"): FNV-1a of namespace/name into [1, 16384).
func endpointIndexHash(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return 1 + h.Sum32()%(1<<14-1)
}

// TestIncrementalCollision adds an endpoint whose index probe lands on the
// index the server holds, while a UDP stream flows to the server: the
// numbering of the new set of endpoints moves the server to another index.
// The daemon takes the incremental path: it loads the new endpoint's
// programs and the server's, renumbered, swaps the server's programs into
// their new slots before the new endpoint takes the old ones, and leaves
// the kernel exactly as a full apply would. No datagram is lost.
func TestIncrementalCollision(t *testing.T) {
	topo := newTopology(t, "client", "server", "extra")
	client, server, extra := topo.eps[0], topo.eps[1], topo.eps[2]
	client.name = "client"
	eps := []*testEndpoint{client, server}
	dir := t.TempDir()
	policies := rulePolicies([]int{8080}, false, "", false)
	writeEndpointsWith(t, dir, topo, policies, eps, client)

	// A name that hashes to the server's index and sorts before it.
	serverIndex := uint32(0)
	for _, e := range compileFull(t, dir).Manifest.Endpoints {
		if e.ID == "default/"+server.name {
			serverIndex = e.Index
		}
	}
	if serverIndex != endpointIndexHash("default/"+server.name) {
		t.Fatalf("the server has index %d, not its hash %d", serverIndex, endpointIndexHash("default/"+server.name))
	}
	for i := 0; ; i++ {
		extra.name = fmt.Sprintf("a%d", i)
		if endpointIndexHash("default/"+extra.name) == serverIndex {
			break
		}
	}
	if extra.name >= server.name {
		t.Fatalf("%s does not sort before %s", extra.name, server.name)
	}

	pinDir := filepath.Join("/sys/fs/bpf", "ebpfc-coll-"+filepath.Base(dir))
	t.Cleanup(func() { runtime.Cleanup(pinDir, nil) })
	d := startDaemon(t, runtime.Options{ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
	tcpServer(t, server, 8080)
	tcpServer(t, server, 8081)
	s := startUDPStream(t, client, server, 9000, time.Millisecond)
	s.waitFlowing(t, 20)

	writeEndpointsWith(t, dir, topo, policies, []*testEndpoint{client, server, extra}, client, extra)
	res, err := d.Apply(dir)
	if err != nil {
		t.Fatal(err)
	}
	full := compileFull(t, dir)
	for _, e := range full.Manifest.Endpoints {
		if e.ID == "default/"+server.name && e.Index == serverIndex {
			t.Fatalf("the full compile leaves the server at index %d: no collision", serverIndex)
		}
	}
	var wantLoaded []string
	for _, name := range []string{extra.name, server.name} {
		for _, prog := range []string{"from_default_", "to_default_"} {
			for _, suffix := range []string{"", "_ipv4", "_ipv6"} {
				wantLoaded = append(wantLoaded, prog+name+suffix)
			}
		}
	}
	slices.Sort(wantLoaded)
	if !res.Incremental || !slices.Equal(res.Loaded, wantLoaded) {
		t.Errorf("incremental %v, loaded %v; want the incremental path loading %v", res.Incremental, res.Loaded, wantLoaded)
	}
	t.Logf("replaced %v; compute %v, compile %v, kernel %v", res.Replaced, res.ComputeTime, res.CompileTime, res.KernelTime)
	checkKernel(t, pinDir, full)
	expectTCP(t, extra, server, 8080, true)
	expectTCP(t, client, server, 8080, true)
	expectTCP(t, extra, server, 8081, false)
	s.waitFlowing(t, 20)
	if sent, lost := s.finish(); lost != 0 {
		t.Errorf("lost %d of %d allowed datagrams while the server moved", lost, sent)
	} else {
		t.Logf("UDP stream: %d datagrams, none lost", sent)
	}

	d.Stop()
	d = startDaemon(t, runtime.Options{ConfigDir: dir, PinDir: pinDir, PollInterval: -1})
	if st := d.Status(); st.LastError != nil || st.LastResult == nil || len(st.LastResult.Loaded)+len(st.LastResult.Attached) > 0 {
		t.Errorf("after a restart: %+v, error %+v; want nothing loaded or attached", st.LastResult, st.LastError)
	}
	checkKernel(t, pinDir, full)
}
