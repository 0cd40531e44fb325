package load

import (
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// Patterns shared with the schema (schemas/types.cue); the inventory test
// holds them to it.
var (
	interfaceRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,15}$`)
	portNameRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$`)
	// dnsLabelRE is a Kubernetes namespace name (RFC 1123 label).
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dnsSubdomainRE is a Kubernetes object name (RFC 1123 subdomain).
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// isPortName reports whether s is a port name: an IANA service name, which
// has at least one letter so that it cannot be read as a number.
func isPortName(s string) bool {
	return portNameRE.MatchString(s) && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz")
}

// validate checks what spans the configuration — names, references,
// uniqueness — then completes it: implicit namespaces are added and every
// slice is sorted as package model documents.
func validate(cfg *model.Config) source.Errors {
	v := &validator{cfg: cfg}
	v.checkNodes()
	v.checkEndpoints()
	v.checkPolicies()
	v.checkServices()
	v.checkNAT()
	v.checkTests()
	v.checkTestFamilies()
	if len(v.errs) == 0 {
		complete(cfg)
	}
	return v.errs
}

type validator struct {
	cfg        *model.Config
	errs       source.Errors
	nodeByName map[string]*model.Node
}

func (v *validator) errorf(pos source.Pos, format string, args ...any) {
	v.errs.Add(pos, format, args...)
}

func checkName(kind, name string, max int, re *regexp.Regexp) string {
	if len(name) == 0 || len(name) > max || !re.MatchString(name) {
		return fmt.Sprintf("invalid %s name %q: want at most %d lower-case letters, digits and '-'", kind, name, max)
	}
	return ""
}

func (v *validator) checkNodes() {
	v.nodeByName = map[string]*model.Node{}
	addrOwner := map[netip.Addr]*model.Node{}
	seenAPI := map[netip.Addr]bool{}
	for _, a := range v.cfg.Cluster.APIServer {
		v.checkAddr(v.cfg.Cluster.Pos, a)
		if seenAPI[a] {
			v.errorf(v.cfg.Cluster.Pos, "cluster.apiServer lists %s twice", a)
		}
		seenAPI[a] = true
	}
	for _, n := range v.cfg.Nodes {
		v.nodeByName[n.Name] = n
		if msg := checkName("node", n.Name, 253, dnsSubdomainRE); msg != "" {
			v.errorf(n.Pos, "%s", msg)
		}
		if len(n.Addresses) == 0 {
			v.errorf(n.Pos, "node %s has no addresses", n.Name)
		}
		for _, a := range n.Addresses {
			v.checkAddr(n.Pos, a)
			if slices.Contains(v.cfg.Cluster.APIServer, a) {
				v.errorf(n.Pos, "node %s has address %s, which is listed in cluster.apiServer; an address has one identity, so list API servers that run on nodes by the node (entity host or remote-node)", n.Name, a)
			}
			if other, ok := addrOwner[a]; ok && other != n {
				v.errorf(n.Pos, "node %s has address %s, which node %s (%s) has too", n.Name, a, other.Name, other.Pos)
			}
			addrOwner[a] = n
		}
		seen := map[string]bool{}
		for _, d := range n.Devices {
			if seen[d] {
				v.errorf(n.Pos, "node %s lists device %s twice", n.Name, d)
			}
			seen[d] = true
		}
	}
}

func (v *validator) checkAddr(pos source.Pos, a netip.Addr) {
	if a.Zone() != "" {
		v.errorf(pos, "address %s has a zone; write it without %%%s", a, a.Zone())
	}
}

func (v *validator) checkEndpoints() {
	eps := v.cfg.Endpoints
	// Stable order, whatever the order of files: the first of two
	// duplicates is the one at the least position.
	slices.SortStableFunc(eps, func(a, b *model.Endpoint) int {
		if c := cmp.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.Pos.Compare(b.Pos)
	})
	type ifKey struct{ node, iface string }
	byID := map[string]*model.Endpoint{}
	byAddr := map[netip.Addr]*model.Endpoint{}
	byIface := map[ifKey]*model.Endpoint{}
	nodeAddr := map[netip.Addr]*model.Node{}
	for _, n := range v.cfg.Nodes {
		for _, a := range n.Addresses {
			nodeAddr[a] = n
		}
	}
	type hostPortKey struct {
		node  string
		proto model.Protocol
		port  uint16
		ip    netip.Addr
	}
	hostPorts := map[hostPortKey]*model.Endpoint{}
	for _, e := range eps {
		if msg := checkName("namespace", e.Namespace, 63, dnsLabelRE); msg != "" {
			v.errorf(e.Pos, "%s", msg)
		}
		if msg := checkName("endpoint", e.Name, 253, dnsSubdomainRE); msg != "" {
			v.errorf(e.Pos, "%s", msg)
		}
		if first, ok := byID[e.ID()]; ok {
			v.errorf(e.Pos, "endpoint %s is defined twice; first at %s", e.ID(), first.Pos)
			continue
		}
		byID[e.ID()] = e
		node, ok := v.nodeByName[e.Node]
		if !ok {
			v.errorf(e.Pos, "endpoint %s is on node %q, which is not in nodes%s", e.ID(), e.Node, v.nodeHint())
		}
		if len(e.Addresses) == 0 {
			v.errorf(e.Pos, "endpoint %s has no addresses", e.ID())
		}
		for _, a := range e.Addresses {
			v.checkAddr(e.Pos, a)
			if other, ok := byAddr[a]; ok && other != e {
				v.errorf(e.Pos, "endpoint %s has address %s, which endpoint %s (%s) has too", e.ID(), a, other.ID(), other.Pos)
				continue
			}
			if n, ok := nodeAddr[a]; ok {
				v.errorf(e.Pos, "endpoint %s has address %s, which is node %s's address", e.ID(), a, n.Name)
			}
			if slices.Contains(v.cfg.Cluster.APIServer, a) {
				v.errorf(e.Pos, "endpoint %s has address %s, which is listed in cluster.apiServer; an address has one identity", e.ID(), a)
			}
			byAddr[a] = e
		}
		if ok {
			k := ifKey{e.Node, e.Interface}
			if other, dup := byIface[k]; dup {
				v.errorf(e.Pos, "endpoint %s uses interface %s on node %s, which endpoint %s (%s) uses too", e.ID(), e.Interface, e.Node, other.ID(), other.Pos)
			} else if slices.Contains(node.Devices, e.Interface) {
				v.errorf(e.Pos, "endpoint %s uses interface %s, which is a device of node %s", e.ID(), e.Interface, e.Node)
			}
			byIface[k] = e
		}
		slices.SortFunc(e.NamedPorts, func(a, b model.NamedPort) int { return cmp.Compare(a.Name, b.Name) })
		for _, np := range e.NamedPorts {
			if !isPortName(np.Name) {
				v.errorf(np.Pos, "invalid port name %q: want lower-case letters, digits and '-', with at least one letter", np.Name)
			}
		}
		for _, hp := range e.HostPorts {
			v.checkAddr(hp.Pos, hp.HostIP)
			k := hostPortKey{e.Node, hp.Protocol, hp.HostPort, hp.HostIP}
			if other, dup := hostPorts[k]; dup {
				v.errorf(hp.Pos, "host port %s/%d on node %s is taken by endpoint %s too", hp.Protocol, hp.HostPort, e.Node, other.ID())
			}
			hostPorts[k] = e
		}
	}
}

// nodeHint names the nodes when there are few, to make a typo obvious.
func (v *validator) nodeHint() string {
	if len(v.cfg.Nodes) == 0 {
		return " (no nodes are declared)"
	}
	if len(v.cfg.Nodes) > 8 {
		return ""
	}
	var names []string
	for _, n := range v.cfg.Nodes {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return " (nodes: " + strings.Join(names, ", ") + ")"
}

func (v *validator) checkPolicies() {
	for _, p := range v.cfg.Policies {
		if !p.ClusterWide {
			if msg := checkName("namespace", p.Namespace, 63, dnsLabelRE); msg != "" {
				v.errorf(p.Pos, "%s", msg)
			}
		}
		if msg := checkName("policy", p.Name, 253, dnsSubdomainRE); msg != "" {
			v.errorf(p.Pos, "%s", msg)
		}
		switch {
		case p.EndpointSelector == nil && p.NodeSelector == nil:
			v.errorf(p.Pos, "policy %s needs an endpointSelector or a nodeSelector", p.ID())
		case p.EndpointSelector != nil && p.NodeSelector != nil:
			v.errorf(p.NodeSelector.Pos, "policy %s has both endpointSelector and nodeSelector; write one", p.ID())
		case p.NodeSelector != nil && !p.ClusterWide:
			v.errorf(p.NodeSelector.Pos, "policy %s: nodeSelector is only allowed in clusterPolicies", p.ID())
		}
		for _, rules := range [][]*model.Rule{p.Ingress, p.Egress, p.IngressDeny, p.EgressDeny} {
			for _, r := range rules {
				for _, icmp := range r.ICMPs {
					if icmp.Family != "IPv4" && icmp.Family != "IPv6" {
						v.errorf(icmp.Pos, "icmp family %q: want IPv4 or IPv6", icmp.Family)
					}
				}
			}
		}
	}
}

func (v *validator) checkServices() {
	type frontend struct {
		addr  netip.Addr
		port  uint16
		proto model.Protocol
	}
	seenFront := map[frontend]*model.Service{}
	nodePorts := map[uint16]*model.Service{}
	for _, s := range v.cfg.Services {
		id := s.Namespace + "/" + s.Name
		if msg := checkName("namespace", s.Namespace, 63, dnsLabelRE); msg != "" {
			v.errorf(s.Pos, "%s", msg)
		}
		if msg := checkName("service", s.Name, 63, dnsLabelRE); msg != "" {
			v.errorf(s.Pos, "%s", msg)
		}
		if len(s.Ports) == 0 {
			v.errorf(s.Pos, "service %s has no ports", id)
		}
		if s.Selector != nil && len(s.Backends) > 0 {
			v.errorf(s.Selector.Pos, "service %s has both a selector and backends; write one", id)
		}
		if s.Type != "LoadBalancer" && len(s.LoadBalancerIPs) > 0 {
			v.errorf(s.Pos, "service %s: loadBalancerIPs need type LoadBalancer", id)
		}
		names := map[string]bool{}
		for _, sp := range s.Ports {
			if len(s.Ports) > 1 && sp.Name == "" {
				v.errorf(sp.Pos, "service %s has several ports; each needs a name", id)
			}
			if sp.Name != "" {
				if names[sp.Name] {
					v.errorf(sp.Pos, "service %s has two ports named %s", id, sp.Name)
				}
				names[sp.Name] = true
			}
			if sp.NodePort != 0 {
				if s.Type == "ClusterIP" {
					v.errorf(sp.Pos, "service %s: nodePort needs type NodePort or LoadBalancer", id)
				} else if other, ok := nodePorts[sp.NodePort]; ok && other != s {
					v.errorf(sp.Pos, "nodePort %d of service %s is taken by service %s/%s", sp.NodePort, id, other.Namespace, other.Name)
				}
				nodePorts[sp.NodePort] = s
			}
			for _, a := range s.ClusterIPs {
				k := frontend{a, sp.Port, sp.Protocol}
				if other, ok := seenFront[k]; ok && other != s {
					v.errorf(sp.Pos, "service %s: %s port %d/%s is taken by service %s/%s", id, a, sp.Port, sp.Protocol, other.Namespace, other.Name)
				}
				seenFront[k] = s
			}
		}
		for _, a := range s.ClusterIPs {
			v.checkAddr(s.Pos, a)
			if len(v.cfg.Cluster.ServiceCIDRs) > 0 && !slices.ContainsFunc(v.cfg.Cluster.ServiceCIDRs, func(p netip.Prefix) bool { return p.Contains(a) }) {
				v.errorf(s.Pos, "service %s: cluster IP %s is outside the cluster's serviceCIDRs", id, a)
			}
		}
		for _, b := range s.Backends {
			v.checkAddr(b.Pos, b.Address)
			if b.Node != "" {
				if _, ok := v.nodeByName[b.Node]; !ok {
					v.errorf(b.Pos, "backend %s of service %s is on node %q, which is not in nodes%s", b.Address, id, b.Node, v.nodeHint())
				}
			}
		}
	}
}

func (v *validator) checkNAT() {
	n := v.cfg.NAT
	if n == nil {
		return
	}
	for _, g := range n.EgressGateways {
		if _, ok := v.nodeByName[g.GatewayNode]; !ok {
			v.errorf(g.Pos, "egress gateway %s uses node %q, which is not in nodes%s", g.Name, g.GatewayNode, v.nodeHint())
		}
		v.checkAddr(g.Pos, g.EgressIP)
	}
}

func (v *validator) checkTests() {
	endpoints := map[string]bool{}
	for _, e := range v.cfg.Endpoints {
		endpoints[e.ID()] = true
	}
	services := map[string]bool{}
	for _, s := range v.cfg.Services {
		services[s.Namespace+"/"+s.Name] = true
	}
	check := func(t *model.Test, role, ref string, serviceOK bool) {
		if id, ok := strings.CutPrefix(ref, "svc:"); ok {
			if !serviceOK {
				v.errorf(t.Pos, "test %s: %s cannot be a service", t.Name, role)
			} else if !services[id] {
				v.errorf(t.Pos, "test %s: %s names service %s, which is not in services", t.Name, role, id)
			}
			return
		}
		if _, err := netip.ParseAddr(ref); err == nil {
			return
		}
		if strings.Contains(ref, "/") {
			if !endpoints[ref] {
				v.errorf(t.Pos, "test %s: %s names endpoint %s, which is not in endpoints", t.Name, role, ref)
			}
			return
		}
		v.errorf(t.Pos, "test %s: %s %q is not an endpoint (namespace/name), an address or a service (svc:namespace/name)", t.Name, role, ref)
	}
	for _, t := range v.cfg.Tests {
		check(t, "from", t.From, false)
		check(t, "to", t.To, true)
		switch t.Protocol {
		case model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP:
			if t.Port == 0 {
				v.errorf(t.Pos, "test %s: %s needs a port", t.Name, t.Protocol)
			}
		case model.ProtoICMP, model.ProtoICMPv6:
			if t.Port != 0 {
				v.errorf(t.Pos, "test %s: %s has no ports; remove port (the test sends an echo request)", t.Name, t.Protocol)
			}
		}
		if len(t.Backends) > 0 && !strings.HasPrefix(t.To, "svc:") {
			v.errorf(t.Pos, "test %s: a list of backends needs a service in to (svc:namespace/name)", t.Name)
		}
	}
}

// checkTestFamilies checks that both ends of every test have an address
// of the family its packets have (model.Test.PickFamily): the family the
// test names, IPv6 for ICMPv6, else one both ends share.
func (v *validator) checkTestFamilies() {
	endpoints := map[string][]netip.Addr{}
	for _, e := range v.cfg.Endpoints {
		endpoints[e.ID()] = e.Addresses
	}
	type end struct {
		role, what string
		addrs      []netip.Addr // nil for a service: either family
		address    bool         // an address written in the test
	}
	// resolve says what ref stands for; ok is false for a reference that
	// checkTests reported.
	resolve := func(role, ref string) (end, bool) {
		if strings.HasPrefix(ref, "svc:") {
			return end{role: role}, true
		}
		if a, err := netip.ParseAddr(ref); err == nil {
			return end{role, ref, []netip.Addr{a}, true}, true
		}
		if addrs, ok := endpoints[ref]; ok && len(addrs) > 0 {
			return end{role, "endpoint " + ref, addrs, false}, true
		}
		return end{}, false
	}
	families := func(e end) string {
		v4, v6 := model.HasFamily(e.addrs, "IPv4"), model.HasFamily(e.addrs, "IPv6")
		switch {
		case len(e.addrs) == 1 && v4:
			return "IPv4"
		case len(e.addrs) == 1:
			return "IPv6"
		case v4 && v6:
			return "IPv4 and IPv6"
		case v4:
			return "IPv4 only"
		}
		return "IPv6 only"
	}
	for _, t := range v.cfg.Tests {
		from, okFrom := resolve("from", t.From)
		to, okTo := resolve("to", t.To)
		if !okFrom || !okTo {
			continue
		}
		if t.Family == "IPv4" && t.Protocol == model.ProtoICMPv6 {
			v.errorf(t.FamilyPos, "test %s: family IPv4 with protocol ICMPv6: ICMPv6 is carried over IPv6; remove family, or use protocol ICMP for an IPv4 echo", t.Name)
			continue
		}
		fam := t.PickFamily(from.addrs, to.addrs)
		for _, e := range []end{from, to} {
			if model.HasFamily(e.addrs, fam) {
				continue
			}
			lacks := fmt.Sprintf("%s %s has no %s address", e.role, e.what, fam)
			if e.address {
				lacks = fmt.Sprintf("%s %s is not an %s address", e.role, e.what, fam)
			}
			switch {
			case t.Family != "":
				v.errorf(t.FamilyPos, "test %s: family is %s, but %s; name an end that has one, or remove family", t.Name, fam, lacks)
			case t.Protocol == model.ProtoICMPv6:
				v.errorf(t.Pos, "test %s: ICMPv6 needs IPv6, but %s; use protocol ICMP for an IPv4 echo", t.Name, lacks)
			default:
				v.errorf(t.Pos, "test %s: from %s (%s) and to %s (%s) share no address family, and a test's packets are IPv4 or IPv6 from end to end; name ends that share one", t.Name, from.what, families(from), to.what, families(to))
			}
			break
		}
	}
}

// complete adds the namespaces that are used but not declared (at the
// least position that uses them), gives every namespace its
// kubernetes.io/metadata.name label and sorts every slice.
func complete(cfg *model.Config) {
	byName := map[string]*model.Namespace{}
	for _, ns := range cfg.Namespaces {
		byName[ns.Name] = ns
	}
	implicit := map[string]*model.Namespace{}
	use := func(name string, pos source.Pos) {
		if _, ok := byName[name]; ok || name == "" {
			if ns, ok := implicit[name]; ok && pos.Compare(ns.Pos) < 0 {
				ns.Pos = pos
			}
			return
		}
		ns := &model.Namespace{Name: name, Pos: pos}
		byName[name], implicit[name] = ns, ns
		cfg.Namespaces = append(cfg.Namespaces, ns)
	}
	for _, e := range cfg.Endpoints {
		use(e.Namespace, e.Pos)
	}
	for _, p := range cfg.Policies {
		use(p.Namespace, p.Pos)
	}
	for _, s := range cfg.Services {
		use(s.Namespace, s.Pos)
	}
	for _, ns := range cfg.Namespaces {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[namespaceNameLabel] = ns.Name
	}

	slices.SortFunc(cfg.Nodes, func(a, b *model.Node) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(cfg.Namespaces, func(a, b *model.Namespace) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(cfg.Endpoints, func(a, b *model.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(cfg.Policies, func(a, b *model.Policy) int {
		// Namespaced policies first, then cluster-wide ones.
		if a.ClusterWide != b.ClusterWide {
			if b.ClusterWide {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(cfg.Services, func(a, b *model.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	if cfg.NAT != nil {
		slices.SortFunc(cfg.NAT.EgressGateways, func(a, b *model.EgressGateway) int { return cmp.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(cfg.Tests, func(a, b *model.Test) int { return cmp.Compare(a.Name, b.Name) })
}
