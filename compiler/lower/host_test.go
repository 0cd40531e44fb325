package lower

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
)

// hostConfig is namedPortConfig with its node labelled role=worker and
// given a device, and a host policy that selects it: SSH from endpoints
// labelled role=client, the cluster entity on the kubelet port, and egress
// to named port http of the namespace team=blue.
func hostConfig() *model.Config {
	cfg := namedPortConfig()
	cfg.Nodes[0].Labels = map[string]string{"role": "worker"}
	cfg.Nodes[0].Devices = []string{"eth0"}
	cfg.Policies = append(cfg.Policies, &model.Policy{Name: "workers", ClusterWide: true,
		NodeSelector: &model.Selector{MatchLabels: map[string]string{"role": "worker"}},
		Ingress: []*model.Rule{{
			Endpoints: []*model.Selector{{MatchLabels: map[string]string{"role": "client"}, Namespaces: &model.Selector{}}},
			HasPeers:  true,
			Ports:     []*model.PortRule{{Port: 22, Protocol: model.ProtoTCP}},
		}, {
			Entities: []model.EntityPeer{{Entity: model.EntityCluster}},
			HasPeers: true,
			Ports:    []*model.PortRule{{Port: 10250, Protocol: model.ProtoTCP}},
		}},
		Egress: []*model.Rule{{
			Endpoints: []*model.Selector{{Namespaces: &model.Selector{MatchLabels: map[string]string{"team": "blue"}}}},
			HasPeers:  true,
			Ports:     []*model.PortRule{{Name: "http"}},
		}},
	})
	benchcfg.Sort(cfg)
	return cfg
}

func lowerNode(t *testing.T, cfg *model.Config, node *model.Node) *Result {
	t.Helper()
	if errs := Supported(cfg); len(errs) > 0 {
		t.Fatal(errs)
	}
	res, err := Node(cfg, node)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A selected node gets the host's programs, map, attachments, default-deny
// cookies and event name; an unselected one gets none of them.
func TestHostPrograms(t *testing.T) {
	cfg := hostConfig()
	res := lowerNode(t, cfg, cfg.Nodes[0])
	var progs []string
	for _, p := range res.Module.Programs {
		if strings.HasPrefix(p.Name, "host_") {
			progs = append(progs, p.Name)
		}
	}
	if want := []string{"host_ingress", "host_egress", "host_ingress_ipv4", "host_ingress_ipv6", "host_egress_ipv4", "host_egress_ipv6"}; !slices.Equal(progs, want) {
		t.Errorf("host programs %v, want %v", progs, want)
	}
	var att []string
	for _, a := range res.Attach {
		if strings.HasPrefix(a.Program, "host_") {
			att = append(att, a.Program+"@"+a.Hook+"/"+a.Device+"/"+a.Direction)
		}
	}
	if want := []string{"host_ingress@tc/eth0/ingress", "host_egress@tc/eth0/egress"}; !slices.Equal(att, want) {
		t.Errorf("host attachments %v, want %v", att, want)
	}
	var defaults []string
	for _, c := range res.Cookies {
		if c.Endpoint == "node:"+cfg.Nodes[0].Name {
			defaults = append(defaults, c.Kind+" "+c.Direction)
		}
	}
	if want := []string{"default-deny ingress", "default-deny egress"}; !slices.Equal(defaults, want) {
		t.Errorf("host cookies %v, want %v", defaults, want)
	}
	if !slices.Contains(res.Endpoints, EndpointRef{Index: 0, ID: "node:" + cfg.Nodes[0].Name, Identity: IdentityHost}) {
		t.Errorf("endpoints %v do not name the host", res.Endpoints)
	}

	// node-b has no labels: not selected.
	other := lowerNode(t, cfg, cfg.Nodes[1])
	for _, p := range other.Module.Programs {
		if strings.HasPrefix(p.Name, "host_") {
			t.Errorf("node-b has host program %s", p.Name)
		}
	}
	for _, c := range other.Contents {
		if c.Map == "pol_host" {
			t.Error("node-b has a pol_host map")
		}
	}
}

// The host's policy map holds the keys of its rules for the host's
// identity's peers: the cluster entity includes host and remote-node, the
// named port egress rule resolves on the peer endpoints (a host has no
// named ports of its own).
func TestHostPolicyEntries(t *testing.T) {
	cfg := hostConfig()
	res := lowerNode(t, cfg, cfg.Nodes[0])
	var entries []Entry
	for _, c := range res.Contents {
		if c.Map == "pol_host" {
			entries = c.Entries
		}
	}
	has := func(id uint32, dir direction, proto uint8, port uint16) bool {
		return slices.ContainsFunc(entries, func(e Entry) bool {
			return e.Key[0] == prefixPort && e.Key[1] == uint64(id) && e.Key[2] == uint64(dir) && e.Key[3] == uint64(proto) && e.Key[4] == uint64(port)
		})
	}
	for _, id := range []uint32{IdentityHost, IdentityRemoteNode, IdentityKubeAPIServer, IdentityUnmanaged} {
		if !has(id, ingress, protoTCP, 10250) {
			t.Errorf("no ingress entry for identity %d on TCP 10250", id)
		}
	}
	if has(IdentityWorld, ingress, protoTCP, 10250) || has(IdentityWorldIPv4, ingress, protoTCP, 10250) {
		t.Error("the world reaches the kubelet")
	}
	// other/db and other/api (team=blue) have named port http = 8080.
	ids := allocateIdentities(cfg)
	for _, ep := range cfg.Endpoints {
		if ep.Namespace == "other" && !has(ids.byEndpoint[ep].id, egress, protoTCP, 8080) {
			t.Errorf("no egress entry to %s's named port http", ep.ID())
		}
	}
}

// Enforcement "never" leaves the host open: no programs. A node selected
// but without devices is an error at the policy.
func TestHostOpenAndErrors(t *testing.T) {
	cfg := hostConfig()
	cfg.Settings.Enforcement = model.EnforceNever
	for _, p := range lowerNode(t, cfg, cfg.Nodes[0]).Module.Programs {
		if strings.HasPrefix(p.Name, "host_") {
			t.Errorf("enforcement never: host program %s", p.Name)
		}
	}
	cfg = hostConfig()
	cfg.Nodes[0].Devices = nil
	_, err := Node(cfg, cfg.Nodes[0])
	if err == nil || !strings.Contains(err.Error(), "lists no devices") {
		t.Errorf("a selected node without devices: %v, want an error", err)
	}
}

// Incremental keeps the host's policy map as Node computes it: a new
// identity its rules select, or a new endpoint with a named port its egress
// names, changes pol_host by the difference only.
func TestAddEndpointHost(t *testing.T) {
	http := model.NamedPort{Name: "http", Port: 9090, Protocol: model.ProtoTCP}
	for _, c := range []struct {
		name string
		add  *model.Endpoint
	}{
		{"new client identity", endpoint("ns-000", "client", "node-b", "10.7.0.1", map[string]string{"role": "client"})},
		{"named port", endpoint("other", "db2", "node-b", "10.9.0.3", map[string]string{"app": "db"}, http)},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := hostConfig()
			inc, err := NewIncremental(cfg, cfg.Nodes[0])
			if err != nil {
				t.Fatal(err)
			}
			before := nodeContents(t, cfg)
			if !slices.ContainsFunc(before, func(m MapContents) bool { return m.Map == "pol_host" }) {
				t.Fatal("no pol_host in Node's contents")
			}
			if diff := cmp.Diff(before, inc.Contents()); diff != "" {
				t.Fatalf("NewIncremental's contents differ from Node's (-Node +Incremental):\n%s", diff)
			}
			next := benchcfg.WithEndpoint(cfg, c.add)
			d, err := inc.AddEndpoint(next, c.add)
			if err != nil {
				t.Fatal(err)
			}
			after := nodeContents(t, next)
			checkDelta(t, before, after, d)
			if diff := cmp.Diff(after, inc.Contents()); diff != "" {
				t.Fatalf("after adding %s the contents differ from Node's (-Node +Incremental):\n%s", c.add.ID(), diff)
			}
			if !slices.ContainsFunc(d.Maps, func(m MapDelta) bool { return m.Map == "pol_host" }) {
				t.Errorf("delta %+v does not change pol_host", d.Maps)
			}
		})
	}
}

// The host's entry programs compare the packet's destination (ingress) or
// source (egress) with every IPv4 address of the node.
func TestHostOwnPacketsCode(t *testing.T) {
	cfg := hostConfig()
	cfg.Nodes[0].Addresses = append(cfg.Nodes[0].Addresses, netip.MustParseAddr("192.168.7.7"), netip.MustParseAddr("fd00::7"))
	res := lowerNode(t, cfg, cfg.Nodes[0])
	for _, p := range res.Module.Programs {
		if p.Name != "host_ingress" && p.Name != "host_egress" {
			continue
		}
		var consts []int64
		for _, b := range p.Blocks {
			if b.Label != "ip_ok" && !strings.HasPrefix(b.Label, "host_addr_") {
				continue
			}
			if b.Term.B.IsConst {
				consts = append(consts, b.Term.B.Const)
			}
		}
		var want []int64
		for _, a := range cfg.Nodes[0].Addresses {
			if a.Is4() {
				want = append(want, be32(addr4(a)))
			}
		}
		if !slices.Equal(consts, want) {
			t.Errorf("%s compares with %v, want the node's IPv4 addresses %v", p.Name, consts, want)
		}
	}
}
