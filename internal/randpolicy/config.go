// Package randpolicy generates random but valid ebpfc policy configurations
// and adversarial packets for them, deterministically from a seed, and
// shrinks a configuration and packet that show a problem to a small one
// that still shows it.
//
// It exists for the differential test of policy semantics
// (compiler/differential_test.go), which runs every generated packet
// through the reference evaluator (compiler/reference) and through the
// compiled programs in the kernel, and saves every disagreement, minimised,
// as a txtar regression case. See docs/differential.md.
//
// A Config is a small syntax tree of the configuration language, not the
// model: it is written out as CUE text (Files) so that a failing case is a
// readable file, and loaded through the real front end (Load), so the
// generator never bypasses the checks a user's configuration goes through.
package randpolicy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// Config is a generated configuration: a cluster with nodes, namespaces and
// endpoints, policies, and settings.
type Config struct {
	PodCIDRs   []netip.Prefix
	APIServer  []netip.Addr // none, or an IPv4 and maybe an IPv6 address
	Nodes      []Node
	Namespaces []Namespace
	Endpoints  []Endpoint
	Policies   []Policy
	// Enforcement is "", "default", "always" or "never"; "" leaves the
	// setting out.
	Enforcement string
	Audit       bool
}

// Node is a node with an IPv4 address, and an IPv6 one on some, labels
// for nodeSelectors and, when Devices is set, the device "eth0" the host
// firewall attaches to.
type Node struct {
	Name    string
	Addrs   []netip.Addr
	Labels  []Label
	Devices bool
}

// Namespace is a namespace with labels.
type Namespace struct {
	Name   string
	Labels []Label
}

// Label is one key and value; labels are kept as ordered lists so that the
// text written is deterministic and a minimiser can drop one.
type Label struct{ Key, Value string }

// Endpoint is a pod with an IPv4 address, an IPv6 address, or both.
type Endpoint struct {
	Namespace, Name string
	Node            string
	Addrs           []netip.Addr
	Labels          []Label
	NamedPorts      []NamedPort
}

// ID returns "namespace/name".
func (e Endpoint) ID() string { return e.Namespace + "/" + e.Name }

// NamedPort is a named container port.
type NamedPort struct {
	Name     string
	Port     uint16
	Protocol string // TCP, UDP or SCTP
}

// Policy is a namespaced policy (Namespace set) or a cluster-wide one. A
// cluster-wide policy with Host set selects nodes: Selector is written as
// its nodeSelector (matchLabels and matchExpressions only).
type Policy struct {
	Namespace   string // "" for clusterPolicies
	Name        string
	Host        bool
	Selector    Selector
	Audit       bool
	Ingress     []Rule
	IngressDeny []Rule
	Egress      []Rule
	EgressDeny  []Rule
}

// ID returns "namespace/name", or the name of a cluster-wide policy.
func (p Policy) ID() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// Selector is an endpoint selector.
type Selector struct {
	MatchLabels []Label
	Expressions []Expression
	// Namespaces, when not nil, is written as namespaceSelector.
	Namespaces *Selector
	// PodNamespace, when set, is written as Cilium's
	// "k8s:io.kubernetes.pod.namespace" label in matchLabels.
	PodNamespace string
}

// Expression is one matchExpressions term.
type Expression struct {
	Key      string
	Operator string // In, NotIn, Exists, DoesNotExist
	Values   []string
}

// Rule is one rule of any of the four lists. Peer lists that are nil are
// not written; EmptyPeers writes an empty endpoint list, which matches no
// peer.
type Rule struct {
	Endpoints  []Selector
	CIDRs      []CIDRSet
	Entities   []string
	EmptyPeers bool
	Ports      []Port
	ICMPs      []ICMP
}

// CIDRSet is a prefix with exceptions. Plain is written in the fromCIDR /
// toCIDR form (and has no exceptions).
type CIDRSet struct {
	CIDR   netip.Prefix
	Except []netip.Prefix
	Plain  bool
}

// Port is one entry of toPorts: a number (0 = every port), a range, or a
// named port, with a protocol ("" leaves it out, which means ANY).
type Port struct {
	Port     uint16
	EndPort  uint16
	Name     string
	Protocol string
	// Quoted writes a numeric port as a string ("80"), as Cilium does.
	Quoted bool
}

// ICMP is one ICMP type with an optional code (Code < 0: none), of ICMPv6
// when V6 is set.
type ICMP struct {
	Type uint8
	Code int
	V6   bool
}

// Clone returns a deep copy of c, so that a minimiser can change it.
func (c *Config) Clone() *Config {
	out := *c
	out.PodCIDRs = slices.Clone(c.PodCIDRs)
	out.APIServer = slices.Clone(c.APIServer)
	out.Nodes = make([]Node, len(c.Nodes))
	for i, n := range c.Nodes {
		n.Addrs, n.Labels = slices.Clone(n.Addrs), slices.Clone(n.Labels)
		out.Nodes[i] = n
	}
	out.Namespaces = make([]Namespace, len(c.Namespaces))
	for i, ns := range c.Namespaces {
		out.Namespaces[i] = Namespace{Name: ns.Name, Labels: slices.Clone(ns.Labels)}
	}
	out.Endpoints = make([]Endpoint, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		ep.Addrs = slices.Clone(ep.Addrs)
		ep.Labels = slices.Clone(ep.Labels)
		ep.NamedPorts = slices.Clone(ep.NamedPorts)
		out.Endpoints[i] = ep
	}
	out.Policies = make([]Policy, len(c.Policies))
	for i, p := range c.Policies {
		p.Selector = p.Selector.clone()
		p.Ingress, p.IngressDeny = cloneRules(p.Ingress), cloneRules(p.IngressDeny)
		p.Egress, p.EgressDeny = cloneRules(p.Egress), cloneRules(p.EgressDeny)
		out.Policies[i] = p
	}
	return &out
}

func (s Selector) clone() Selector {
	out := s
	out.MatchLabels = slices.Clone(s.MatchLabels)
	out.Expressions = make([]Expression, len(s.Expressions))
	for i, e := range s.Expressions {
		e.Values = slices.Clone(e.Values)
		out.Expressions[i] = e
	}
	if s.Expressions == nil {
		out.Expressions = nil
	}
	if s.Namespaces != nil {
		ns := s.Namespaces.clone()
		out.Namespaces = &ns
	}
	return out
}

func cloneRules(rs []Rule) []Rule {
	if rs == nil {
		return nil
	}
	out := make([]Rule, len(rs))
	for i, r := range rs {
		r.Endpoints = slices.Clone(r.Endpoints)
		for j := range r.Endpoints {
			r.Endpoints[j] = r.Endpoints[j].clone()
		}
		r.CIDRs = slices.Clone(r.CIDRs)
		for j := range r.CIDRs {
			r.CIDRs[j].Except = slices.Clone(r.CIDRs[j].Except)
		}
		r.Entities = slices.Clone(r.Entities)
		r.Ports = slices.Clone(r.Ports)
		r.ICMPs = slices.Clone(r.ICMPs)
		out[i] = r
	}
	return out
}

// The files Files writes, in the order Load reads them.
const (
	ClusterFile  = "cluster.cue"
	PoliciesFile = "policies.cue"
)

// Files returns the configuration as CUE files: the cluster (nodes,
// namespaces, endpoints, settings) and the policies.
func (c *Config) Files() map[string][]byte {
	return map[string][]byte{
		ClusterFile:  []byte(c.clusterCUE()),
		PoliciesFile: []byte(c.policiesCUE()),
	}
}

// Load builds the model of files (as Files returns them, or as read back
// from a saved case) with the front end.
func Load(files map[string][]byte) (*model.Config, error) {
	fsys := fstest.MapFS{}
	var names []string
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: data}
		names = append(names, name)
	}
	slices.Sort(names)
	return load.LoadFS(fsys, names)
}

func (c *Config) clusterCUE() string {
	var b strings.Builder
	b.WriteString("package ebpfc\n\n")
	fmt.Fprintf(&b, "cluster: {name: \"diff\", podCIDRs: %s", quotedList(c.PodCIDRs))
	if len(c.APIServer) > 0 {
		fmt.Fprintf(&b, ", apiServer: %s", quotedList(c.APIServer))
	}
	b.WriteString("}\n")
	for _, n := range c.Nodes {
		if len(n.Labels) == 0 && !n.Devices {
			fmt.Fprintf(&b, "nodes: %q: addresses: %s\n", n.Name, quotedList(n.Addrs))
			continue
		}
		fmt.Fprintf(&b, "nodes: %q: {addresses: %s", n.Name, quotedList(n.Addrs))
		if n.Devices {
			b.WriteString(`, devices: ["eth0"]`)
		}
		if len(n.Labels) > 0 {
			fmt.Fprintf(&b, ", labels: %s", labelsCUE(n.Labels))
		}
		b.WriteString("}\n")
	}
	for _, ns := range c.Namespaces {
		if len(ns.Labels) == 0 {
			fmt.Fprintf(&b, "namespaces: %s: {}\n", ns.Name)
			continue
		}
		fmt.Fprintf(&b, "namespaces: %s: labels: %s\n", ns.Name, labelsCUE(ns.Labels))
	}
	for _, ep := range c.Endpoints {
		fmt.Fprintf(&b, "endpoints: %s: %s: {\n", ep.Namespace, ep.Name)
		fmt.Fprintf(&b, "\tnode: %q, interface: %q, addresses: %s\n", ep.Node, "lxc-"+ep.Namespace+"-"+ep.Name, quotedList(ep.Addrs))
		if len(ep.Labels) > 0 {
			fmt.Fprintf(&b, "\tlabels: %s\n", labelsCUE(ep.Labels))
		}
		for _, np := range ep.NamedPorts {
			fmt.Fprintf(&b, "\tnamedPorts: %q: {port: %d, protocol: %q}\n", np.Name, np.Port, np.Protocol)
		}
		b.WriteString("}\n")
	}
	var settings []string
	if c.Enforcement != "" {
		settings = append(settings, fmt.Sprintf("enforcement: %q", c.Enforcement))
	}
	if c.Audit {
		settings = append(settings, "audit: true")
	}
	if len(settings) > 0 {
		fmt.Fprintf(&b, "settings: {%s}\n", strings.Join(settings, ", "))
	}
	return b.String()
}

func (c *Config) policiesCUE() string {
	var b strings.Builder
	b.WriteString("package ebpfc\n")
	for _, p := range c.Policies {
		b.WriteString("\n")
		if p.Namespace == "" {
			fmt.Fprintf(&b, "clusterPolicies: %q: {\n", p.Name)
		} else {
			fmt.Fprintf(&b, "policies: %s: %q: {\n", p.Namespace, p.Name)
		}
		sel := "endpointSelector"
		if p.Host {
			sel = "nodeSelector"
		}
		fmt.Fprintf(&b, "\t%s: %s\n", sel, p.Selector.cue())
		if p.Audit {
			b.WriteString("\taudit: true\n")
		}
		for _, l := range []struct {
			name   string
			rules  []Rule
			prefix string
		}{
			{"ingress", p.Ingress, "from"}, {"ingressDeny", p.IngressDeny, "from"},
			{"egress", p.Egress, "to"}, {"egressDeny", p.EgressDeny, "to"},
		} {
			if l.rules == nil {
				continue
			}
			fmt.Fprintf(&b, "\t%s: [", l.name)
			for i, r := range l.rules {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString("\n\t\t" + r.cue(l.prefix))
			}
			if len(l.rules) > 0 {
				b.WriteString(",\n\t")
			}
			b.WriteString("]\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// quotedList writes addresses or prefixes as a CUE list of strings.
func quotedList[T fmt.Stringer](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%q", x.String())
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func labelsCUE(ls []Label) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%q: %q", l.Key, l.Value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (s Selector) cue() string {
	var parts []string
	ml := slices.Clone(s.MatchLabels)
	if s.PodNamespace != "" {
		ml = append(ml, Label{"k8s:io.kubernetes.pod.namespace", s.PodNamespace})
	}
	if len(ml) > 0 {
		parts = append(parts, "matchLabels: "+labelsCUE(ml))
	}
	if len(s.Expressions) > 0 {
		var es []string
		for _, e := range s.Expressions {
			t := fmt.Sprintf("{key: %q, operator: %q", e.Key, e.Operator)
			if len(e.Values) > 0 {
				vs := make([]string, len(e.Values))
				for i, v := range e.Values {
					vs[i] = fmt.Sprintf("%q", v)
				}
				t += ", values: [" + strings.Join(vs, ", ") + "]"
			}
			es = append(es, t+"}")
		}
		parts = append(parts, "matchExpressions: ["+strings.Join(es, ", ")+"]")
	}
	if s.Namespaces != nil {
		parts = append(parts, "namespaceSelector: "+s.Namespaces.cue())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (r Rule) cue(prefix string) string {
	var parts []string
	if len(r.Endpoints) > 0 || r.EmptyPeers {
		var ss []string
		for _, s := range r.Endpoints {
			ss = append(ss, s.cue())
		}
		parts = append(parts, prefix+"Endpoints: ["+strings.Join(ss, ", ")+"]")
	}
	var plain, sets []string
	for _, c := range r.CIDRs {
		if c.Plain {
			plain = append(plain, fmt.Sprintf("%q", c.CIDR))
			continue
		}
		t := fmt.Sprintf("{cidr: %q", c.CIDR)
		if len(c.Except) > 0 {
			xs := make([]string, len(c.Except))
			for i, x := range c.Except {
				xs[i] = fmt.Sprintf("%q", x)
			}
			t += ", except: [" + strings.Join(xs, ", ") + "]"
		}
		sets = append(sets, t+"}")
	}
	if len(plain) > 0 {
		parts = append(parts, prefix+"CIDR: ["+strings.Join(plain, ", ")+"]")
	}
	if len(sets) > 0 {
		parts = append(parts, prefix+"CIDRSet: ["+strings.Join(sets, ", ")+"]")
	}
	if len(r.Entities) > 0 {
		es := make([]string, len(r.Entities))
		for i, e := range r.Entities {
			es[i] = fmt.Sprintf("%q", e)
		}
		parts = append(parts, prefix+"Entities: ["+strings.Join(es, ", ")+"]")
	}
	if len(r.Ports) > 0 {
		ps := make([]string, len(r.Ports))
		for i, p := range r.Ports {
			ps[i] = p.cue()
		}
		parts = append(parts, "toPorts: [{ports: ["+strings.Join(ps, ", ")+"]}]")
	}
	if len(r.ICMPs) > 0 {
		is := make([]string, len(r.ICMPs))
		for i, ic := range r.ICMPs {
			is[i] = fmt.Sprintf("{type: %d", ic.Type)
			if ic.Code >= 0 {
				is[i] += fmt.Sprintf(", code: %d", ic.Code)
			}
			if ic.V6 {
				is[i] += `, family: "IPv6"`
			}
			is[i] += "}"
		}
		parts = append(parts, "icmps: [{fields: ["+strings.Join(is, ", ")+"]}]")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (p Port) cue() string {
	var parts []string
	switch {
	case p.Name != "":
		parts = append(parts, fmt.Sprintf("port: %q", p.Name))
	case p.Quoted:
		parts = append(parts, fmt.Sprintf("port: \"%d\"", p.Port))
	case p.Port != 0:
		parts = append(parts, fmt.Sprintf("port: %d", p.Port))
	}
	if p.EndPort != 0 {
		parts = append(parts, fmt.Sprintf("endPort: %d", p.EndPort))
	}
	if p.Protocol != "" {
		parts = append(parts, fmt.Sprintf("protocol: %q", p.Protocol))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
