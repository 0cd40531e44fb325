package compiler_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// hostCluster has two worker nodes (selected by the host policy) and an
// infra node (not selected). worker-1 has two addresses and two devices and
// runs web; worker-2 runs prometheus.
//
// From worker-1: 198.51.100.0/24 may reach SSH except from
// 198.51.100.128/25, and 198.51.100.66 is denied outright; the cluster
// reaches the kubelet (10250); remote nodes reach VXLAN (UDP 8472);
// prometheus reaches the node exporter (9100); anyone may ping. The host
// may send DNS and HTTPS to the world and anything to remote nodes.
const hostCluster = `package ebpfc

cluster: {name: "test", podCIDRs: ["10.0.0.0/16"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: {
	"worker-1": {addresses: ["192.168.1.1", "192.168.2.1"], devices: ["eth0", "eth1"], labels: role: "worker"}
	"worker-2": {addresses: ["192.168.1.2"], devices: ["eth0"], labels: role: "worker"}
	"infra-1": {addresses: ["192.168.1.9"], devices: ["eth0"], labels: role: "infra"}
}
endpoints: default: {
	web:        {node: "worker-1", interface: "lxc-web", addresses: ["10.0.1.5"], labels: app: "web"}
	prometheus: {node: "worker-2", interface: "lxc-prom", addresses: ["10.0.2.7"], labels: app: "prometheus"}
}
clusterPolicies: "worker-hosts": {
	nodeSelector: matchLabels: role: "worker"
	ingress: [
		{fromCIDRSet: [{cidr: "198.51.100.0/24", except: ["198.51.100.128/25"]}], toPorts: [{ports: [{port: 22, protocol: "TCP"}]}]},
		{fromEntities: ["cluster"], toPorts: [{ports: [{port: 10250, protocol: "TCP"}]}]},
		{fromEntities: ["remote-node"], toPorts: [{ports: [{port: 8472, protocol: "UDP"}]}]},
		{fromEndpoints: [{matchLabels: app: "prometheus"}], toPorts: [{ports: [{port: 9100, protocol: "TCP"}]}]},
		{icmps: [{fields: [{type: 8}]}]},
	]
	ingressDeny: [{fromCIDR: ["198.51.100.66/32"]}]
	egress: [
		{toEntities: ["world"], toPorts: [{ports: [{port: 53, protocol: "UDP"}, {port: 443, protocol: "TCP"}]}]},
		{toEntities: ["remote-node"]},
	]
}
`

func compileHostCluster(t *testing.T) (*model.Config, map[string]*compiler.Artifacts) {
	t.Helper()
	cfg, err := load.LoadFS(fstest.MapFS{"cluster.cue": {Data: []byte(hostCluster)}}, []string{"cluster.cue"})
	if err != nil {
		t.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{CheckEveryPass: true})
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string]*compiler.Artifacts{}
	for _, a := range arts {
		byNode[a.Node] = a
	}
	return cfg, byNode
}

// The manifest lists the host programs of a selected node, attached at tc
// on every device the node lists, and none on a node the policy does not
// select.
func TestHostManifest(t *testing.T) {
	_, arts := compileHostCluster(t)
	attachments := func(node string) map[string][]string {
		out := map[string][]string{}
		for _, p := range arts[node].Manifest.Programs {
			for _, a := range p.Attach {
				out[p.Name] = append(out[p.Name], a.Hook+" "+a.Device+" "+a.Direction)
			}
			if p.TailCallSlot != nil {
				out[p.Name] = append(out[p.Name], "tail call")
			}
		}
		return out
	}
	got := attachments("worker-1")
	want := map[string]string{
		"host_ingress":      "tc eth0 ingress,tc eth1 ingress",
		"host_egress":       "tc eth0 egress,tc eth1 egress",
		"host_ingress_ipv4": "tail call",
		"host_egress_ipv4":  "tail call",
	}
	for prog, w := range want {
		if g := strings.Join(got[prog], ","); g != w {
			t.Errorf("worker-1 %s: %q, want %q", prog, g, w)
		}
	}
	for prog := range attachments("infra-1") {
		if strings.HasPrefix(prog, "host_") {
			t.Errorf("infra-1 is not selected but has program %s", prog)
		}
	}
	if _, ok := attachments("worker-2")["host_ingress"]; !ok {
		t.Error("worker-2 is selected but has no host_ingress")
	}

	m := arts["worker-1"].Manifest
	var polHost bool
	for _, mp := range m.Maps {
		if mp.Name == "pol_host" {
			polHost = mp.Sync && mp.Entries > 0
		}
	}
	if !polHost {
		t.Error("worker-1 has no synced, non-empty pol_host map")
	}
	// Both directions are enforced, each with a default-deny cookie that
	// names the node; events name the host as endpoint index 0.
	defaults := map[string]bool{}
	for _, c := range m.Cookies {
		if c.Kind == "default-deny" && c.Endpoint == "node:worker-1" {
			defaults[c.Direction] = true
		}
	}
	if !defaults["ingress"] || !defaults["egress"] {
		t.Errorf("default-deny cookies of node:worker-1: %v, want ingress and egress", defaults)
	}
	found := false
	for _, e := range m.Endpoints {
		if e.Index == 0 && e.ID == "node:worker-1" && e.Identity == lower.IdentityHost {
			found = true
		}
	}
	if !found {
		t.Errorf("manifest endpoints %+v do not name the host as index 0", m.Endpoints)
	}
}
