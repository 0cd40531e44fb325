package load

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// base is a valid configuration the error cases add to.
const base = `package ebpfc

nodes: {
	"node-a": {addresses: ["192.168.0.1"], devices: ["eth0"]}
	"node-b": {addresses: ["192.168.0.2"], devices: ["eth0"]}
}
endpoints: web: a: {node: "node-a", interface: "lxc-a", addresses: ["10.0.1.1"]}
`

func loadFiles(t testing.TB, files map[string]string) (*model.Config, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	var names []string
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
		names = append(names, name)
	}
	return LoadFS(fsys, names)
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // added to base.cue
		pos   string            // file:line:col of the first error
		msg   string            // a substring of its message
	}{
		{
			name:  "syntax error",
			files: map[string]string{"x.cue": "package ebpfc\n\nnodes: {\n\t\"n\": {addresses: [\"1.2.3.4\"]\n"},
			pos:   "x.cue:4:31",
			msg:   "syntax error: expected '}', found 'EOF'",
		},
		{
			name:  "wrong package",
			files: map[string]string{"x.cue": "package other\n\nnodes: {}\n"},
			pos:   "x.cue:1:1",
			msg:   "package other",
		},
		{
			name:  "wrong type",
			files: map[string]string{"x.cue": "package ebpfc\n\nnodes: \"node-c\": {addresses: \"192.168.0.3\"}\n"},
			pos:   "x.cue:3:30",
			msg:   "nodes.\"node-c\".addresses: wrong type string, want list",
		},
		{
			name: "port out of range",
			files: map[string]string{"x.cue": `package ebpfc

policies: web: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{port: 70000}]}]}]
}
`},
			pos: "x.cue:5:39",
			msg: "out of bound <=65535",
		},
		{
			name: "port as string out of range",
			files: map[string]string{"x.cue": `package ebpfc

policies: web: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{port: "70000"}]}]}]
}
`},
			pos: "x.cue:5:39",
			msg: "port 70000 is out of range",
		},
		{
			name:  "bad CIDR",
			files: map[string]string{"x.cue": "package ebpfc\n\ncluster: podCIDRs: [\"10.0.0.0/33\"]\n"},
			pos:   "x.cue:3:21",
			msg:   "does not satisfy net.IPCIDR",
		},
		{
			name:  "CIDR with host bits",
			files: map[string]string{"x.cue": "package ebpfc\n\ncluster: podCIDRs: [\"10.0.0.1/8\"]\n"},
			pos:   "x.cue:3:21",
			msg:   "did you mean 10.0.0.0/8?",
		},
		{
			name:  "bad IP",
			files: map[string]string{"x.cue": "package ebpfc\n\nnodes: \"node-c\": addresses: [\"10.0.0.300\"]\n"},
			pos:   "x.cue:3:30",
			msg:   "does not satisfy net.IP",
		},
		{
			name:  "endpoint on unknown node",
			files: map[string]string{"x.cue": "package ebpfc\n\nendpoints: web: b: {node: \"node-z\", interface: \"lxc-b\", addresses: [\"10.0.1.2\"]}\n"},
			pos:   "x.cue:3:17",
			msg:   `on node "node-z", which is not in nodes (nodes: node-a, node-b)`,
		},
		{
			name: "duplicate endpoint across CUE and JSON",
			files: map[string]string{"inv.json": `{"endpoints": [
  {"namespace": "web", "name": "a", "node": "node-a", "interface": "lxc-x", "addresses": ["10.0.1.9"]}
]}`},
			pos: "inv.json:2:3",
			msg: "endpoint web/a is defined twice; first at base.cue:7:17",
		},
		{
			name:  "duplicate address",
			files: map[string]string{"x.cue": "package ebpfc\n\nendpoints: web: b: {node: \"node-b\", interface: \"lxc-b\", addresses: [\"10.0.1.1\"]}\n"},
			pos:   "x.cue:3:17",
			msg:   "address 10.0.1.1, which endpoint web/a (base.cue:7:17) has too",
		},
		{
			name:  "duplicate interface on a node",
			files: map[string]string{"x.cue": "package ebpfc\n\nendpoints: web: b: {node: \"node-a\", interface: \"lxc-a\", addresses: [\"10.0.1.2\"]}\n"},
			pos:   "x.cue:3:17",
			msg:   "uses interface lxc-a on node node-a, which endpoint web/a",
		},
		{
			name:  "interface is a node device",
			files: map[string]string{"x.cue": "package ebpfc\n\nendpoints: web: b: {node: \"node-a\", interface: \"eth0\", addresses: [\"10.0.1.2\"]}\n"},
			pos:   "x.cue:3:17",
			msg:   "which is a device of node node-a",
		},
		{
			name:  "unknown field",
			files: map[string]string{"x.cue": "package ebpfc\n\nnodes: \"node-c\": {addresses: [\"192.168.0.3\"], zones: \"z\"}\n"},
			pos:   "x.cue:3:47",
			msg:   `field "zones" not allowed`,
		},
		{
			name:  "unknown section",
			files: map[string]string{"x.cue": "package ebpfc\n\npolices: {}\n"},
			pos:   "x.cue:3:1",
			msg:   "unknown section",
		},
		{
			name:  "bad enum",
			files: map[string]string{"x.cue": "package ebpfc\n\nsettings: enforcement: \"sometimes\"\n"},
			pos:   "x.cue:3:24",
			msg:   `invalid value "sometimes" (want one of "always", "default", "never")`,
		},
		{
			name: "except outside cidr",
			files: map[string]string{"x.cue": `package ebpfc

policies: web: p: {
	endpointSelector: {}
	ingress: [{fromCIDRSet: [{cidr: "10.0.0.0/8", except: ["192.168.0.0/16"]}]}]
}
`},
			pos: "x.cue:5:57",
			msg: "except 192.168.0.0/16 is not inside cidr 10.0.0.0/8",
		},
		{
			name: "inverted port range",
			files: map[string]string{"x.cue": `package ebpfc

policies: web: p: {
	endpointSelector: {}
	egress: [{toPorts: [{ports: [{port: 8080, endPort: 8000, protocol: "TCP"}]}]}]
}
`},
			pos: "x.cue:5:53",
			msg: "endPort 8000 is less than port 8080",
		},
		{
			name: "endPort with named port",
			files: map[string]string{"x.cue": `package ebpfc

policies: web: p: {
	endpointSelector: {}
	egress: [{toPorts: [{ports: [{port: "http", endPort: 90}]}]}]
}
`},
			pos: "x.cue:5:55",
			msg: `endPort cannot be used with the named port "http"`,
		},
		{
			name:  "bad JSON",
			files: map[string]string{"inv.json": "{\"endpoints\": [\n  {\"namespace\": \"web\",, }\n]}"},
			pos:   "inv.json:2:23",
			msg:   "invalid JSON",
		},
		{
			name:  "JSON wrong type",
			files: map[string]string{"inv.json": "{\"endpoints\": [\n  {\"namespace\": \"web\", \"name\": \"b\", \"node\": \"node-a\", \"interface\": \"lxc-b\", \"addresses\": \"10.0.1.2\"}\n]}"},
			pos:   "inv.json:2:90",
			msg:   "endpoints.0.addresses: wrong type string, want array",
		},
		{
			name:  "JSON bad IP",
			files: map[string]string{"inv.json": "{\"endpoints\": [\n  {\"namespace\": \"web\", \"name\": \"b\", \"node\": \"node-a\", \"interface\": \"lxc-b\",\n   \"addresses\": [\"10.0.1.2\", \"10.0.1\"]}\n]}"},
			pos:   "inv.json:3:30",
			msg:   `invalid IP address "10.0.1"`,
		},
		{
			name:  "JSON unknown field",
			files: map[string]string{"inv.json": "{\"endpoints\": [\n  {\"namespace\": \"web\", \"name\": \"b\", \"node\": \"node-a\", \"interface\": \"lxc-b\", \"addresses\": [\"10.0.1.2\"], \"lables\": {}}\n]}"},
			pos:   "inv.json:2:104",
			msg:   "endpoints.0.lables: field not allowed",
		},
		{
			name:  "JSON missing field",
			files: map[string]string{"inv.json": "{\"endpoints\": [\n  {\"namespace\": \"web\", \"name\": \"b\", \"interface\": \"lxc-b\", \"addresses\": [\"10.0.1.2\"]}\n]}"},
			pos:   "inv.json:2:3",
			msg:   `field "node" is required`,
		},
		{
			name:  "JSON port out of range",
			files: map[string]string{"inv.json": "{\"endpoints\": [\n  {\"namespace\": \"web\", \"name\": \"b\", \"node\": \"node-a\", \"interface\": \"lxc-b\", \"addresses\": [\"10.0.1.2\"],\n   \"namedPorts\": {\"http\": {\"port\": 70000}}}\n]}"},
			pos:   "inv.json:3:36",
			msg:   "port 70000 is out of range",
		},
		{
			name:  "missing required field",
			files: map[string]string{"x.cue": "package ebpfc\n\nendpoints: web: b: {node: \"node-a\", addresses: [\"10.0.1.2\"]}\n"},
			pos:   "x.cue:3:17",
			msg:   `field "interface" is required`,
		},
		{
			name:  "conflicting values across files",
			files: map[string]string{"x.cue": "package ebpfc\n\nendpoints: web: a: node: \"node-b\"\n"},
			pos:   "base.cue:7:27",
			msg:   "conflicting values",
		},
		{
			name: "both selectors",
			files: map[string]string{"x.cue": `package ebpfc

clusterPolicies: p: {
	endpointSelector: {}
	nodeSelector: {}
}
`},
			pos: "x.cue:5:16",
			msg: "has both endpointSelector and nodeSelector",
		},
		{
			name:  "nodeSelector in a namespaced policy",
			files: map[string]string{"x.cue": "package ebpfc\n\npolicies: web: p: nodeSelector: matchLabels: role: \"gw\"\n"},
			pos:   "x.cue:3:33",
			msg:   "nodeSelector is only allowed in clusterPolicies",
		},
		{
			name:  "In without values",
			files: map[string]string{"x.cue": "package ebpfc\n\npolicies: web: p: endpointSelector: matchExpressions: [{key: \"app\", operator: \"In\"}]\n"},
			pos:   "x.cue:3:56",
			msg:   "operator In needs at least one value",
		},
		{
			name:  "bad entity",
			files: map[string]string{"x.cue": "package ebpfc\n\npolicies: web: p: {endpointSelector: {}, ingress: [{fromEntities: [\"wrld\"]}]}\n"},
			pos:   "x.cue:3:68",
			msg:   `invalid value "wrld" (want one of "all", "cluster", "host", "kube-apiserver", "remote-node", "world")`,
		},
		{
			name:  "test names an unknown endpoint",
			files: map[string]string{"x.cue": "package ebpfc\n\ntests: t1: {from: \"web/a\", to: \"web/zz\", port: 80, expect: \"allow\"}\n"},
			pos:   "x.cue:3:8",
			msg:   "names endpoint web/zz, which is not in endpoints",
		},
		{
			name:  "nodePort on a ClusterIP service",
			files: map[string]string{"x.cue": "package ebpfc\n\nservices: web: s: ports: [{port: 80, nodePort: 30080}]\n"},
			pos:   "x.cue:3:27",
			msg:   "nodePort needs type NodePort or LoadBalancer",
		},
		{
			name:  "bad interface name",
			files: map[string]string{"x.cue": "package ebpfc\n\nendpoints: web: b: {node: \"node-a\", interface: \"lxc-much-too-long-name\", addresses: [\"10.0.1.2\"]}\n"},
			pos:   "x.cue:3:48",
			msg:   `invalid value "lxc-much-too-long-name"`,
		},
		{
			name:  "NAT port range inverted",
			files: map[string]string{"x.cue": "package ebpfc\n\nnat: portRange: {min: 40000, max: 30000}\n"},
			pos:   "x.cue:3:17",
			msg:   "port range min 40000 is greater than max 30000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"base.cue": base}
			for k, v := range tt.files {
				files[k] = v
			}
			_, err := loadFiles(t, files)
			if err == nil {
				t.Fatal("no error")
			}
			errs, ok := source.AsErrors(err)
			if !ok {
				t.Fatalf("not positioned: %v", err)
			}
			for _, e := range errs {
				if e.Pos.String() == tt.pos && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("want an error at %s containing %q; got:\n%v", tt.pos, tt.msg, err)
		})
	}
}
