// Package benchcfg builds, deterministically, the configurations that
// ebpfc's benchmarks compile and run: a whole node at scale (Node), and the
// two packet series of docs/benchmarks.md — one endpoint whose policy names
// more and more peer identities (PolicyIdentities), and one endpoint with a
// fixed policy and a growing ipcache (IPCache).
//
// Every configuration is built directly as a *model.Config, sorted as the
// loader sorts it, and uses only what the lowering supports, so it compiles
// without going through CUE.
package benchcfg

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// The node every configuration compiles for, and the node that holds the
// remote peers of the packet series.
const (
	NodeName       = "node-a"
	RemoteNodeName = "node-b"
)

// Node builds a cluster whose endpoints all run on NodeName, the worst case
// for a node, with the given numbers of endpoints and policies.
//
// Endpoints spread over max(1, endpoints/100) namespaces. Each carries an
// app label with ten values per namespace and a tier label with three, so
// the endpoints of a namespace form 30 identities. Policy j lives in
// namespace j%namespaces and selects one app value there. It has one
// ingress rule whose peers are
//   - the endpoints of the next app value in its namespace,
//   - its own /24 of world addresses (every fourth with a /26 excepted),
//   - on every tenth policy also the /22 that contains that /24,
//
// and whose ports are TCP 80+j%100 and 443, plus UDP/53 on every third
// policy and ANY/8080 on every seventh. No policy has egress rules. With
// policies >= 10 × namespaces every endpoint is selected by some policy.
func Node(endpoints, policies int) *model.Config {
	nns := max(1, endpoints/100)
	ns := func(i int) string { return fmt.Sprintf("ns-%03d", i%nns) }
	cfg := baseConfig()
	for i := range nns {
		name := ns(i)
		cfg.Namespaces = append(cfg.Namespaces, &model.Namespace{
			Name:   name,
			Labels: map[string]string{"kubernetes.io/metadata.name": name, "team": fmt.Sprintf("team-%d", i%7)},
		})
	}
	for i := range endpoints {
		cfg.Endpoints = append(cfg.Endpoints, &model.Endpoint{
			Namespace: ns(i),
			Name:      fmt.Sprintf("pod-%05d", i),
			Node:      NodeName,
			Interface: fmt.Sprintf("lxc%05d", i),
			Addresses: []netip.Addr{addrFrom(10<<24 | uint32(i+1))},
			Labels: map[string]string{
				"app":  fmt.Sprintf("app-%d", (i/nns)%10),
				"tier": fmt.Sprintf("tier-%d", i%3),
			},
		})
	}
	for j := range policies {
		hi, lo := byte(j>>8), byte(j)
		peer := &model.CIDRPeer{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{11, hi, lo, 0}), 24)}
		if j%4 == 0 {
			peer.Except = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{11, hi, lo, 192}), 26)}
		}
		app := (j / nns) % 10
		r := &model.Rule{
			CIDRs:     []*model.CIDRPeer{peer},
			Endpoints: []*model.Selector{{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (app+1)%10)}}},
			HasPeers:  true,
		}
		if j%10 == 0 {
			r.CIDRs = append(r.CIDRs, &model.CIDRPeer{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{11, hi, lo &^ 3, 0}), 22)})
		}
		r.Ports = []*model.PortRule{
			{Port: uint16(80 + j%100), Protocol: model.ProtoTCP},
			{Port: 443, Protocol: model.ProtoTCP},
		}
		if j%3 == 0 {
			r.Ports = append(r.Ports, &model.PortRule{Port: 53, Protocol: model.ProtoUDP})
		}
		if j%7 == 0 {
			r.Ports = append(r.Ports, &model.PortRule{Port: 8080, Protocol: model.ProtoAny})
		}
		cfg.Policies = append(cfg.Policies, &model.Policy{
			Namespace:        ns(j),
			Name:             fmt.Sprintf("pol-%05d", j),
			EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", app)}},
			Ingress:          []*model.Rule{r},
		})
	}
	Sort(cfg)
	return cfg
}

// The packet series' addresses. Target is default/web on NodeName; the
// packets go to TargetPort over TCP.
var (
	TargetAddr = netip.MustParseAddr("10.0.1.5")
	// AllowedPeer is an address the policy allows TCP/TargetPort from.
	AllowedPeer = netip.MustParseAddr("10.1.0.1")
	// DeniedPeer is an address of an endpoint identity the policy does
	// not name, so the lookups run with a real identity and miss.
	DeniedPeer = netip.MustParseAddr("10.3.0.1")
)

// TargetPort is the port the packet series' policies allow.
const TargetPort = 80

// TargetProgram is the ingress entry program of default/web, which
// tail-calls its IPv4 policy program.
const TargetProgram = "to_default_web"

// PolicyIdentities builds the first packet series: default/web on NodeName,
// selected by one policy with n ingress rules, rule i allowing TCP/80 from
// the endpoints labelled peer=p-i. Each of those is one endpoint on
// RemoteNodeName with its own label set, so the policy names n identities
// and the endpoint's policy map holds n entries; the ipcache holds the n
// peers as well. AllowedPeer is the address of the last rule's peer;
// DeniedPeer's endpoint has a label set no rule names. Map sizes are raised
// to fit.
func PolicyIdentities(n int) *model.Config {
	cfg := packetBase(n)
	pol := targetPolicy()
	for i := range n {
		// Peer i takes the (n-1-i)-th address, so the last rule's peer
		// holds AllowedPeer: a longer rule list cannot favour the allowed
		// packet by naming it first.
		cfg.Endpoints = append(cfg.Endpoints, remotePeer(i, n-1-i, map[string]string{"peer": fmt.Sprintf("p-%06d", i)}))
		pol.Ingress = append(pol.Ingress, &model.Rule{
			Endpoints: []*model.Selector{{MatchLabels: map[string]string{"peer": fmt.Sprintf("p-%06d", i)}}},
			HasPeers:  true,
			Ports:     []*model.PortRule{{Port: TargetPort, Protocol: model.ProtoTCP}},
		})
	}
	cfg.Policies = []*model.Policy{pol}
	Sort(cfg)
	return cfg
}

// IPCache builds the second packet series: default/web on NodeName,
// selected by one policy with one rule that allows TCP/80 from the
// endpoints labelled app=client, and n endpoints on RemoteNodeName. The
// first holds AllowedPeer and is the only client; the others are app=other
// and fill the ipcache with n entries besides the few fixed ones (world,
// pod CIDR, nodes, web). The policy map holds one entry whatever n is.
func IPCache(n int) *model.Config {
	cfg := packetBase(n)
	pol := targetPolicy()
	pol.Ingress = []*model.Rule{{
		Endpoints: []*model.Selector{{MatchLabels: map[string]string{"app": "client"}}},
		HasPeers:  true,
		Ports:     []*model.PortRule{{Port: TargetPort, Protocol: model.ProtoTCP}},
	}}
	for i := range n {
		labels := map[string]string{"app": "other"}
		if i == 0 {
			labels["app"] = "client"
		}
		cfg.Endpoints = append(cfg.Endpoints, remotePeer(i, i, labels))
	}
	cfg.Policies = []*model.Policy{pol}
	Sort(cfg)
	return cfg
}

// ConntrackOnly is the reference of the packet series: default/web as in
// IPCache(10), but selected only by a policy that allows all its egress, so
// its ingress is open and only tracked. The allowed packet then runs the
// same entry program, tail call and conntrack lookups as in the series,
// and no ipcache or policy map lookup: the difference between the two is
// what the policy decision costs.
func ConntrackOnly() *model.Config {
	cfg := IPCache(10)
	pol := targetPolicy()
	pol.Egress = []*model.Rule{{}}
	pol.Egress[0].Ports = []*model.PortRule{{Protocol: model.ProtoAny}}
	cfg.Policies = []*model.Policy{pol}
	return cfg
}

// packetBase is the cluster of the packet series: NodeName with default/web
// and the denied peer, RemoteNodeName, and map sizes for about n entries.
func packetBase(n int) *model.Config {
	cfg := baseConfig()
	cfg.Nodes = append(cfg.Nodes, &model.Node{
		Name:      RemoteNodeName,
		Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.2")},
		Devices:   []string{"eth0"},
		Labels:    map[string]string{},
		Features:  map[string]bool{},
	})
	size := uint32(max(16384, n+1024))
	cfg.Settings.MapSizes = map[string]uint32{"policy": size, "ipcache": size}
	for _, name := range []string{"default", "peers"} {
		cfg.Namespaces = append(cfg.Namespaces, &model.Namespace{
			Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name},
		})
	}
	cfg.Endpoints = append(cfg.Endpoints,
		&model.Endpoint{
			Namespace: "default", Name: "web", Node: NodeName, Interface: "lxc-web",
			Addresses: []netip.Addr{TargetAddr}, Labels: map[string]string{"app": "web"},
		},
		&model.Endpoint{
			Namespace: "peers", Name: "denied", Node: RemoteNodeName, Interface: "lxc-denied",
			Addresses: []netip.Addr{DeniedPeer}, Labels: map[string]string{"app": "denied"},
		})
	return cfg
}

// targetPolicy selects default/web, with no rules yet. Its namespaceSelector
// in each rule is left out: the peers are in namespace peers, so the rules
// select cluster-wide through a cluster-wide policy.
func targetPolicy() *model.Policy {
	return &model.Policy{
		Name:             "web-ingress",
		ClusterWide:      true,
		EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "web"}},
	}
}

// remotePeer is peer i of the packet series, on RemoteNodeName, at the
// address slot places after AllowedPeer.
func remotePeer(i, slot int, labels map[string]string) *model.Endpoint {
	return &model.Endpoint{
		Namespace: "peers",
		Name:      fmt.Sprintf("peer-%06d", i),
		Node:      RemoteNodeName,
		Interface: fmt.Sprintf("lxc%06d", i),
		Addresses: []netip.Addr{addrFrom(addr4(AllowedPeer) + uint32(slot))},
		Labels:    labels,
	}
}

func baseConfig() *model.Config {
	return &model.Config{
		Cluster: model.Cluster{
			Name:         "bench",
			PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")},
		},
		Nodes: []*model.Node{{
			Name:      NodeName,
			Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.1")},
			Devices:   []string{"eth0"},
			Labels:    map[string]string{},
			Features:  map[string]bool{},
		}},
		Settings: model.Settings{Enforcement: model.EnforceDefault, VerdictEvents: "all"},
	}
}

// WithEndpoint returns a copy of cfg with ep added, sorted as the loader
// sorts endpoints. cfg itself, and everything both share, is unchanged.
func WithEndpoint(cfg *model.Config, ep *model.Endpoint) *model.Config {
	out := *cfg
	out.Endpoints = append(slices.Clip(cfg.Endpoints), ep)
	sortEndpoints(out.Endpoints)
	return &out
}

// Sort orders cfg's lists as the loader does (see model.Config).
func Sort(cfg *model.Config) {
	slices.SortFunc(cfg.Nodes, func(a, b *model.Node) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(cfg.Namespaces, func(a, b *model.Namespace) int { return strings.Compare(a.Name, b.Name) })
	sortEndpoints(cfg.Endpoints)
	slices.SortFunc(cfg.Policies, func(a, b *model.Policy) int {
		// Namespaced policies first, by namespace and name, then
		// cluster-wide ones by name.
		return cmp.Or(cmp.Compare(boolInt(a.ClusterWide), boolInt(b.ClusterWide)),
			strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
}

func sortEndpoints(eps []*model.Endpoint) {
	slices.SortFunc(eps, func(a, b *model.Endpoint) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrFrom(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}
