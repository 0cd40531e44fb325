// Package netpolcases is a network policy truth-table suite in the style of
// Kubernetes' own e2e tests (test/e2e/network/netpol): three namespaces x,
// y and z, each with pods a, b and c labelled pod=a, pod=b and pod=c, every
// pod serving ports 80 and 81 over TCP, UDP and SCTP under the named ports
// serve-80-tcp, serve-81-udp and so on. Each case installs policies written
// in ebpfc's CUE as docs/policy.md "Kubernetes NetworkPolicy" translates the
// Kubernetes objects of the e2e test, and gives the 9×9 reachability matrix
// Kubernetes' semantics expect for a protocol and port, written by hand as
// the e2e tests print them.
//
// The suite does not know how verdicts are computed: a Prober answers
// whether a connection is allowed, so the reference evaluator, the
// compiled programs in the kernel or an interpreter can all be held to the
// same tables.
package netpolcases

import (
	"fmt"
	"net/netip"
	"strings"
	"testing/fstest"

	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// Namespaces and PodNames make up the cluster: every namespace has every
// pod.
var (
	Namespaces = []string{"x", "y", "z"}
	PodNames   = []string{"a", "b", "c"}
	// ServedPorts are the ports every pod serves, over every protocol in
	// ServedProtocols.
	ServedPorts     = []uint16{80, 81}
	ServedProtocols = []model.Protocol{model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP}
)

// Pod is one pod of the cluster.
type Pod struct {
	Namespace, Name string
	Node            string
	Addr            netip.Addr
}

// ID returns "namespace/name".
func (p Pod) ID() string { return p.Namespace + "/" + p.Name }

// Pods returns the nine pods in matrix order (x/a, x/b, …, z/c). Pod n of
// namespace m (both from 1) has address 10.0.m.n; pods alternate between
// node-1 and node-2, so that both same-node and cross-node pairs occur.
func Pods() []Pod {
	var out []Pod
	for i, ns := range Namespaces {
		for j, name := range PodNames {
			node := "node-1"
			if (i*len(PodNames)+j)%2 == 1 {
				node = "node-2"
			}
			out = append(out, Pod{
				Namespace: ns, Name: name, Node: node,
				Addr: netip.AddrFrom4([4]byte{10, 0, byte(i + 1), byte(j + 1)}),
			})
		}
	}
	return out
}

// Node addresses and the pod CIDR of the cluster.
var (
	NodeAddrs = map[string]netip.Addr{
		"node-1": netip.MustParseAddr("192.168.1.1"),
		"node-2": netip.MustParseAddr("192.168.1.2"),
	}
	PodCIDR = netip.MustParsePrefix("10.0.0.0/16")
)

// ClusterCUE returns the CUE text of the cluster: nodes, namespaces (each
// labelled ns=<name> besides kubernetes.io/metadata.name, as older e2e
// versions did) and the nine endpoints with their named ports.
func ClusterCUE() string {
	var b strings.Builder
	fmt.Fprintf(&b, "package ebpfc\n\ncluster: {name: \"netpol\", podCIDRs: [%q]}\n", PodCIDR)
	for _, n := range []string{"node-1", "node-2"} {
		fmt.Fprintf(&b, "nodes: %q: addresses: [%q]\n", n, NodeAddrs[n])
	}
	for _, ns := range Namespaces {
		fmt.Fprintf(&b, "namespaces: %s: labels: ns: %q\n", ns, ns)
	}
	for _, p := range Pods() {
		fmt.Fprintf(&b, "endpoints: %s: %s: {\n", p.Namespace, p.Name)
		fmt.Fprintf(&b, "\tnode: %q, interface: \"lxc-%s-%s\", addresses: [%q]\n", p.Node, p.Namespace, p.Name, p.Addr)
		fmt.Fprintf(&b, "\tlabels: pod: %q\n", p.Name)
		for _, port := range ServedPorts {
			for _, proto := range ServedProtocols {
				fmt.Fprintf(&b, "\tnamedPorts: %q: {port: %d, protocol: %q}\n", NamedPort(port, proto), port, proto)
			}
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// NamedPort returns the name under which every pod serves port over proto,
// as the e2e tests name them: "serve-80-tcp".
func NamedPort(port uint16, proto model.Protocol) string {
	return fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto)))
}

// Case is one e2e-style test: policies and the reachability they must give.
type Case struct {
	// Name is the e2e test the case follows.
	Name string
	// Kubernetes is the NetworkPolicy the case translates, in short.
	Kubernetes string
	// Policies is CUE text (package ebpfc) with the translated policies.
	Policies string
	// Checks are reachability matrices for protocols and ports.
	Checks []Check
	// Probes are single connections, to or from addresses outside the
	// matrix.
	Probes []Probe
	// Divergence, when set, says why docs/policy.md gives a different
	// answer from Kubernetes for this case; the Checks then carry both.
	Divergence string
}

// Check is the reachability matrix expected for one protocol and port.
type Check struct {
	Protocol model.Protocol
	Port     uint16
	// Reachability is the matrix Kubernetes' semantics give, rows "from"
	// and columns "to" (see ParseMatrix).
	Reachability string
	// Ebpfc, when not empty, is the matrix docs/policy.md gives where it
	// departs from Kubernetes (see Case.Divergence).
	Ebpfc string
}

// Expected returns the matrix that docs/policy.md gives: Ebpfc when the
// case diverges, else Reachability.
func (c Check) Expected() string {
	if c.Ebpfc != "" {
		return c.Ebpfc
	}
	return c.Reachability
}

// Probe is one connection and whether it is allowed. From and To are pods
// ("x/a") or addresses.
type Probe struct {
	From, To string
	Protocol model.Protocol
	Port     uint16
	Allowed  bool
}

func (p Probe) String() string {
	return fmt.Sprintf("%s -> %s %s/%d", p.From, p.To, p.Protocol, p.Port)
}

// Resolve returns the address of a pod ("x/a") or parses an address.
func Resolve(s string) (netip.Addr, error) {
	for _, p := range Pods() {
		if p.ID() == s {
			return p.Addr, nil
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is neither a pod (ns/name) nor an address", s)
	}
	return a, nil
}

// Files returns the case's configuration as files: cluster.cue and
// policies.cue.
func (c Case) Files() fstest.MapFS {
	return fstest.MapFS{
		"cluster.cue":  {Data: []byte(ClusterCUE())},
		"policies.cue": {Data: []byte(c.Policies)},
	}
}

// Load builds the case's configuration with the front end.
func (c Case) Load() (*model.Config, error) {
	return load.LoadFS(c.Files(), []string{"cluster.cue", "policies.cue"})
}

// Prober says whether a connection from src to dst over proto to port is
// allowed.
type Prober func(src, dst netip.Addr, proto model.Protocol, port uint16) bool

// Reach probes every pair of pods, the pod itself included.
func Reach(proto model.Protocol, port uint16, probe Prober) Matrix {
	pods := Pods()
	m := newMatrix(pods)
	for i, from := range pods {
		for j, to := range pods {
			m.Allowed[i][j] = probe(from.Addr, to.Addr, proto, port)
		}
	}
	return m
}
