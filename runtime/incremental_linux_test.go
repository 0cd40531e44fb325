//go:build linux

package runtime_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	writeFile(t, filepath.Join(dir, "policies.cue"), "package ebpfc\n\n"+incrementalPolicies)
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
