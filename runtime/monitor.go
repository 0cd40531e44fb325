//go:build linux

package runtime

// Reading the events ring buffer and fanning its decoded records out to
// subscribers (ebpfc monitor, tests).

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/ebpfc/ebpfc/compiler"
)

// subscriberBuffer is how many events a subscriber may fall behind before
// events are dropped for it.
const subscriberBuffer = 1024

type subscriber struct {
	filter  EventFilter
	ch      chan Event
	dropped int
}

type eventHub struct {
	log *slog.Logger

	mu      sync.Mutex
	node    string
	decoder *EventDecoder
	state   string // what describe reports
	mapID   ebpf.MapID
	reader  *ringbuf.Reader
	done    chan struct{}
	subs    map[*subscriber]bool
	decoded uint64
	errors  uint64
	closed  bool
}

func newEventHub(log *slog.Logger) *eventHub {
	return &eventHub{log: log, subs: make(map[*subscriber]bool), state: "no datapath yet"}
}

// update points the hub at the events map of a newly applied datapath (nil
// when it has none) and its decoder.
func (h *eventHub) update(a *Artifacts, events *ebpf.Map) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.node = a.Manifest.Node
	if events == nil {
		h.stopReaderLocked()
		h.decoder = nil
		h.state = "the manifest has no events map"
		return
	}
	dec, err := NewEventDecoder(a.Manifest, a.ManifestJSON)
	if err != nil {
		h.stopReaderLocked()
		h.decoder = nil
		h.state = "not decoding events: " + err.Error()
		h.log.Warn("events not read", "err", err)
		return
	}
	h.decoder = dec
	info, err := events.Info()
	var id ebpf.MapID
	if err == nil {
		id, _ = info.ID()
	}
	if h.reader != nil && id == h.mapID && id != 0 {
		return // same ring buffer: keep reading it with the new names
	}
	h.stopReaderLocked()
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		h.state = "cannot read the events map: " + err.Error()
		h.log.Error("events not read", "err", err)
		return
	}
	h.reader, h.mapID, h.done = rd, id, make(chan struct{})
	h.state = "reading"
	go h.read(rd, h.done)
}

// extend adds the names of an incremental change (endpoints, cookies,
// identities) to the decoder of the running datapath.
func (h *eventHub) extend(parts []*compiler.Manifest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.decoder == nil {
		return
	}
	for _, part := range parts {
		h.decoder.extend(part)
	}
}

func (h *eventHub) stopReaderLocked() {
	if h.reader == nil {
		return
	}
	h.reader.Close()
	done := h.done
	h.reader, h.done, h.mapID = nil, nil, 0
	h.mu.Unlock()
	<-done
	h.mu.Lock()
}

func (h *eventHub) read(rd *ringbuf.Reader, done chan struct{}) {
	defer close(done)
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			h.log.Error("reading events", "err", err)
			return
		}
		now := time.Now()
		h.mu.Lock()
		if h.decoder == nil {
			h.mu.Unlock()
			continue
		}
		ev, err := h.decoder.Decode(rec.RawSample)
		if err != nil {
			h.errors++
			h.mu.Unlock()
			continue
		}
		h.decoded++
		ev.Time, ev.Node = now, h.node
		for s := range h.subs {
			if !s.filter.Match(ev) {
				continue
			}
			select {
			case s.ch <- ev:
			default:
				s.dropped++
			}
		}
		h.mu.Unlock()
	}
}

func (h *eventHub) subscribe(f EventFilter) (<-chan Event, func()) {
	s := &subscriber{filter: f, ch: make(chan Event, subscriberBuffer)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	h.subs[s] = true
	h.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			if h.subs[s] {
				delete(h.subs, s)
				close(s.ch)
			}
			h.mu.Unlock()
		})
	}
}

func (h *eventHub) describe() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

func (h *eventHub) counts() (decoded, undecodable uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.decoded, h.errors
}

func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopReaderLocked()
	h.closed = true
	for s := range h.subs {
		close(s.ch)
		delete(h.subs, s)
	}
}
