module github.com/ebpfc/ebpfc

go 1.26.0

require github.com/cilium/ebpf v0.22.0

require (
	cuelang.org/go v0.17.1 // indirect
	github.com/alecthomas/participle/v2 v2.1.4 // indirect
	github.com/go-quicktest/qt v1.102.0 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/google/gopacket v1.1.19 // indirect
	github.com/rogpeppe/go-internal v1.15.0 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
)
