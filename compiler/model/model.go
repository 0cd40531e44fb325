// Package model is the typed, validated form of an ebpfc configuration. The
// front end (package load) decodes CUE, Kubernetes YAML and JSON inventories
// into it; every later stage reads it. Every value keeps the source position of
// the CUE (or JSON) value it came from.
//
// A Config that the front end returns has passed validation: names are
// unique, references resolve, addresses and prefixes parse, ports are in range.
// Slices are sorted (nodes by name, endpoints and policies by namespace and
// name) so that everything built from a Config is deterministic.
package model

import (
	"net/netip"

	"github.com/ebpfc/ebpfc/source"
)

// Pos is a source position.
type Pos = source.Pos

// Config is a whole cluster configuration.
type Config struct {
	Cluster    Cluster
	Nodes      []*Node      // sorted by Name
	Namespaces []*Namespace // sorted by Name; includes every namespace used
	Endpoints  []*Endpoint  // sorted by Namespace, Name
	Policies   []*Policy    // sorted: namespaced ones by Namespace, Name, then cluster-wide ones by Name
	Services   []*Service   // sorted by Namespace, Name
	NAT        *NAT         // nil when the config has no nat section
	Settings   Settings
	Tests      []*Test // sorted by Name
}

// Cluster describes the cluster as a whole.
type Cluster struct {
	Name         string
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix
	// APIServer are the addresses of the Kubernetes API server; they have
	// the reserved identity kube-apiserver.
	APIServer []netip.Addr
	Pos       Pos
}

// Node is a machine that runs endpoints and gets its own compiled datapath.
type Node struct {
	Name      string
	Addresses []netip.Addr
	Zone      string
	Labels    map[string]string
	Devices   []string        // host-facing devices, e.g. "eth0"
	Features  map[string]bool // per-node feature switches, e.g. "xdp"
	Pos       Pos
}

// Namespace is a Kubernetes namespace with its labels. The label
// kubernetes.io/metadata.name is always present and equals Name.
type Namespace struct {
	Name   string
	Labels map[string]string
	Pos    Pos
}

// Endpoint is a workload (a pod) with its addresses and labels.
type Endpoint struct {
	Namespace  string
	Name       string
	Node       string
	Interface  string // the host-side device where its tc programs attach
	Addresses  []netip.Addr
	Labels     map[string]string
	NamedPorts []NamedPort // sorted by Name
	HostPorts  []HostPort
	Pos        Pos
}

// ID returns "namespace/name".
func (e *Endpoint) ID() string { return e.Namespace + "/" + e.Name }

// NamedPort is a container port with a name that policies and services may
// refer to.
type NamedPort struct {
	Name     string
	Port     uint16
	Protocol Protocol
	Pos      Pos
}

// HostPort maps a port on the node to a port of the endpoint.
type HostPort struct {
	HostPort      uint16
	ContainerPort uint16
	Protocol      Protocol
	HostIP        netip.Addr // zero means every node address
	Pos           Pos
}

// Protocol is an L4 protocol as written in the configuration.
type Protocol string

// The protocols the language knows.
const (
	ProtoAny    Protocol = "ANY"
	ProtoTCP    Protocol = "TCP"
	ProtoUDP    Protocol = "UDP"
	ProtoSCTP   Protocol = "SCTP"
	ProtoICMP   Protocol = "ICMP"
	ProtoICMPv6 Protocol = "ICMPv6"
)

// Number returns the IP protocol number, 0 for ANY.
func (p Protocol) Number() uint8 {
	switch p {
	case ProtoTCP:
		return 6
	case ProtoUDP:
		return 17
	case ProtoSCTP:
		return 132
	case ProtoICMP:
		return 1
	case ProtoICMPv6:
		return 58
	}
	return 0
}

// Policy is a CiliumNetworkPolicy-shaped policy, or a Kubernetes
// NetworkPolicy translated to that shape.
type Policy struct {
	Namespace   string // "" for a cluster-wide policy
	Name        string
	ClusterWide bool
	// Exactly one of EndpointSelector and NodeSelector is set.
	EndpointSelector *Selector
	NodeSelector     *Selector
	Ingress          []*Rule
	Egress           []*Rule
	IngressDeny      []*Rule
	EgressDeny       []*Rule
	// DefaultDenyIngress and DefaultDenyEgress put the selected endpoints
	// in default deny for the direction even when the policy has no rules
	// for it (Kubernetes' policyTypes). A policy with any rule in a
	// direction enforces that direction anyway.
	DefaultDenyIngress bool
	DefaultDenyEgress  bool
	Audit              bool
	Description        string
	// FromKubernetes marks a networking.k8s.io/v1 NetworkPolicy.
	FromKubernetes bool
	Pos            Pos
}

// Enforces reports whether p puts the endpoints it selects in default deny
// for ingress (egress=false) or egress (egress=true): it has allow or deny
// rules for the direction, or asks for it with DefaultDeny*.
func (p *Policy) Enforces(egress bool) bool {
	if egress {
		return p.DefaultDenyEgress || len(p.Egress)+len(p.EgressDeny) > 0
	}
	return p.DefaultDenyIngress || len(p.Ingress)+len(p.IngressDeny) > 0
}

// ID returns "namespace/name", or "name" for a cluster-wide policy.
func (p *Policy) ID() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// Selector selects endpoints (or nodes) by labels. A nil *Selector in a peer
// list never appears; an empty Selector selects everything.
type Selector struct {
	MatchLabels      map[string]string
	MatchExpressions []Expression
	// Namespaces, when not nil, restricts an endpoint selector to endpoints in
	// namespaces whose labels this selector matches (Kubernetes'
	// namespaceSelector). Namespace scoping of namespaced policies is applied
	// by resolution, not stored here.
	Namespaces *Selector
	Pos        Pos
}

// Operator is a matchExpressions operator.
type Operator string

// The operators.
const (
	OpIn           Operator = "In"
	OpNotIn        Operator = "NotIn"
	OpExists       Operator = "Exists"
	OpDoesNotExist Operator = "DoesNotExist"
)

// Expression is one matchExpressions entry.
type Expression struct {
	Key      string
	Operator Operator
	Values   []string
	Pos      Pos
}

// Matches reports whether labels satisfy every term of s.
func (s *Selector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		v, ok := labels[e.Key]
		switch e.Operator {
		case OpIn:
			if !ok || !contains(e.Values, v) {
				return false
			}
		case OpNotIn:
			if ok && contains(e.Values, v) {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Rule is one ingress, egress, ingressDeny or egressDeny rule. The peer lists
// are alternatives (a packet matches when any peer matches); a rule with no
// peer list at all matches every peer. Ports are alternatives too; no ports
// means every protocol and port.
type Rule struct {
	Endpoints []*Selector  // fromEndpoints / toEndpoints
	CIDRs     []*CIDRPeer  // fromCIDR, fromCIDRSet / toCIDR, toCIDRSet
	Entities  []EntityPeer // fromEntities / toEntities
	// HasPeers is true when any peer field was written, even an empty list;
	// an empty list then matches no peer (Kubernetes' semantics).
	HasPeers bool
	Ports    []*PortRule
	ICMPs    []*ICMPRule
	Pos      Pos
}

// CIDRPeer is a prefix with exceptions.
type CIDRPeer struct {
	CIDR   netip.Prefix
	Except []netip.Prefix
	Pos    Pos
}

// Entity is a reserved peer class.
type Entity string

// The entities.
const (
	EntityWorld         Entity = "world"
	EntityHost          Entity = "host"
	EntityRemoteNode    Entity = "remote-node"
	EntityCluster       Entity = "cluster"
	EntityAll           Entity = "all"
	EntityKubeAPIServer Entity = "kube-apiserver"
)

// EntityPeer is an entity with the position it was written at.
type EntityPeer struct {
	Entity Entity
	Pos    Pos
}

// PortRule is one port (or range, or named port) with its protocol.
type PortRule struct {
	Port     uint16 // 0 means every port
	EndPort  uint16 // 0 means no range
	Name     string // a named port, resolved per destination endpoint
	Protocol Protocol
	Pos      Pos
}

// ICMPRule matches ICMP or ICMPv6 by type and optional code.
type ICMPRule struct {
	Family string // "IPv4" or "IPv6"
	Type   uint8
	Code   *uint8
	Pos    Pos
}

// Service is a Kubernetes-shaped service.
type Service struct {
	Namespace                string
	Name                     string
	Type                     string // ClusterIP, NodePort, LoadBalancer
	ClusterIPs               []netip.Addr
	ExternalIPs              []netip.Addr
	LoadBalancerIPs          []netip.Addr
	Ports                    []*ServicePort
	Backends                 []*Backend
	Selector                 *Selector
	SessionAffinity          string // None or ClientIP
	SessionAffinityTimeout   int    // seconds
	ExternalTrafficPolicy    string // Cluster or Local
	InternalTrafficPolicy    string // Cluster or Local
	TopologyAware            bool
	LoadBalancerSourceRanges []netip.Prefix
	Algorithm                string // random or maglev
	ForwardingMode           string // snat, dsr or hybrid
	Pos                      Pos
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name       string
	Port       uint16
	Protocol   Protocol
	TargetPort uint16
	TargetName string // a named target port
	NodePort   uint16
	Pos        Pos
}

// Backend is one service backend.
type Backend struct {
	Address netip.Addr
	Port    uint16
	Weight  uint16
	Node    string
	Zone    string
	State   string // active, terminating or maintenance
	Pos     Pos
}

// NAT configures masquerading and egress gateways.
type NAT struct {
	Masquerade     *Masquerade
	EgressGateways []*EgressGateway
	PortMin        uint16
	PortMax        uint16
	Pos            Pos
}

// Masquerade is ip-masq-agent-style SNAT towards the outside.
type Masquerade struct {
	Enabled            bool
	Devices            []string
	NonMasqueradeCIDRs []netip.Prefix
	Pos                Pos
}

// EgressGateway redirects selected endpoints' traffic to some destinations
// through a gateway node with a fixed egress IP.
type EgressGateway struct {
	Name         string
	Selector     *Selector
	Destinations []netip.Prefix
	Excluded     []netip.Prefix
	GatewayNode  string
	EgressIP     netip.Addr
	Pos          Pos
}

// Enforcement is the policy enforcement mode.
type Enforcement string

// The enforcement modes, as Cilium has them.
const (
	EnforceDefault Enforcement = "default"
	EnforceAlways  Enforcement = "always"
	EnforceNever   Enforcement = "never"
)

// Settings are cluster-wide knobs.
type Settings struct {
	Enforcement   Enforcement
	Audit         bool
	VerdictEvents string // all, denied or none
	MapSizes      map[string]uint32
	MapSizeRatio  float64        // other maps' sizes as a fraction of node memory; 0 means unset
	CTTimeouts    map[string]int // seconds, by name (tcp, tcpSyn, tcpFin, udp, icmp, any)
	// FieldPos holds the position of each field written, by its path under
	// settings ("verdictEvents", "mapSizes.conntrack", …), so that an error
	// about one field points at it.
	FieldPos map[string]Pos
	Pos      Pos
}

// At returns the position of the settings field at path, or of the settings
// section when the field has none.
func (s *Settings) At(path string) Pos {
	if p, ok := s.FieldPos[path]; ok && p.IsValid() {
		return p
	}
	return s.Pos
}

// Test is a policy unit test: a connection attempt and what must happen.
type Test struct {
	Name     string
	From     string // an endpoint "ns/name", an address or a service "svc:ns/name"
	To       string
	Protocol Protocol
	Port     uint16
	Expect   string   // allow or deny
	Backends []string // for a service, the backends it may pick
	Pos      Pos

	// Family is the address family the test asks for, "IPv4" or "IPv6",
	// or "" to let PickFamily choose from its ends.
	Family    string
	FamilyPos Pos // where family was written
}

// PickFamily returns the address family of t's packets, "IPv4" or "IPv6",
// given the addresses that its from and to stand for (an endpoint's
// addresses or the one address written; nil for a service, which stands
// for either family): the family t asks for; IPv6 for ICMPv6; otherwise
// IPv4 when both ends have an IPv4 address, else IPv6. An end may still
// lack an address of that family; package load reports such a test.
func (t *Test) PickFamily(from, to []netip.Addr) string {
	switch {
	case t.Family != "":
		return t.Family
	case t.Protocol == ProtoICMPv6:
		return "IPv6"
	case HasFamily(from, "IPv4") && HasFamily(to, "IPv4"):
		return "IPv4"
	}
	return "IPv6"
}

// HasFamily reports whether addrs holds an address of family ("IPv4" or
// "IPv6"), an IPv4-mapped IPv6 address counting as IPv4. A nil addrs (a
// service) has both.
func HasFamily(addrs []netip.Addr, family string) bool {
	if addrs == nil {
		return true
	}
	for _, a := range addrs {
		if a.Unmap().Is4() == (family == "IPv4") {
			return true
		}
	}
	return false
}
