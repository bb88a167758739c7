package charon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// The vici transport and packet layers (strongSwan,
// src/libcharon/plugins/vici/README.md, "Transport protocol" and "Packet
// layer"): each packet is a 32-bit network-order length, then an 8-bit
// packet type, then for named types an 8-bit-length name, then a message.
const (
	pktCmdRequest    = 0
	pktCmdResponse   = 1
	pktCmdUnknown    = 2
	pktEventRegister = 3
	pktEventConfirm  = 5
	pktEventUnknown  = 6
	pktEvent         = 7
)

// maxPacket is the README's limit on a segment: 512 KiB.
const maxPacket = 512 << 10

// Client is a vici connection to charon. Commands run one at a time (the
// protocol has no request ids); events are handed to the functions given
// to Listen, on the client's reader goroutine. Safe for concurrent use.
type Client struct {
	conn net.Conn

	cmd     sync.Mutex // one command or registration at a time
	replies chan packet

	mu       sync.Mutex
	handlers map[string]func(*Message)
	err      error // why the reader stopped
	done     chan struct{}
}

type packet struct {
	typ  byte
	name string
	msg  []byte
}

// Dial connects to charon's vici socket.
func Dial(path string) (*Client, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("charon: vici: %w", err)
	}
	c := &Client{conn: conn, replies: make(chan packet, 1), handlers: map[string]func(*Message){}, done: make(chan struct{})}
	go c.read()
	return c, nil
}

// Vici connects to this charon's vici socket.
func (ch *Charon) Vici() (*Client, error) { return Dial(ch.vici) }

// Close closes the connection and waits for the reader to end.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// read dispatches packets until the connection ends: events to their
// handlers, everything else to the command waiting for it.
func (c *Client) read() {
	defer close(c.done)
	defer close(c.replies)
	for {
		p, err := readPacket(c.conn)
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if p.typ == pktEvent {
			c.mu.Lock()
			h := c.handlers[p.name]
			c.mu.Unlock()
			if h != nil {
				if m, err := ParseMessage(p.msg); err == nil {
					h(m)
				}
			}
			continue
		}
		c.replies <- p
	}
}

func readPacket(r io.Reader) (packet, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return packet{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxPacket {
		return packet{}, fmt.Errorf("%w: packet of %d bytes", ErrMalformed, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return packet{}, err
	}
	return parsePacket(b)
}

// parsePacket splits a packet into its type, name (for named types) and
// message.
func parsePacket(b []byte) (packet, error) {
	p := packet{typ: b[0]}
	b = b[1:]
	switch p.typ {
	case pktCmdRequest, pktEventRegister, 4, pktEvent: // 4: EVENT_UNREGISTER
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return p, fmt.Errorf("%w: truncated packet name", ErrMalformed)
		}
		n := 1 + int(b[0]) // as an int: 1+b[0] wraps at a 255-byte name
		p.name, b = string(b[1:n]), b[n:]
	case pktCmdResponse, pktCmdUnknown, pktEventConfirm, pktEventUnknown:
	default:
		return p, fmt.Errorf("%w: packet type %d", ErrMalformed, p.typ)
	}
	p.msg = b
	return p, nil
}

func (c *Client) send(typ byte, name string, msg []byte) error {
	if len(name) > 0xff {
		return fmt.Errorf("charon: vici name of %d bytes", len(name))
	}
	b := make([]byte, 4, 4+2+len(name)+len(msg))
	b = append(append(append(b, typ, byte(len(name))), name...), msg...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := c.conn.Write(b)
	return err
}

// reply waits for the answer to the command or registration just sent.
func (c *Client) reply() (packet, error) {
	p, ok := <-c.replies
	if !ok {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return p, fmt.Errorf("charon: vici connection closed: %w", err)
	}
	return p, nil
}

// Call runs a command and returns charon's response message.
func (c *Client) Call(cmd string, req *Message) (*Message, error) {
	if req == nil {
		req = &Message{}
	}
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	c.cmd.Lock()
	defer c.cmd.Unlock()
	if err := c.send(pktCmdRequest, cmd, b); err != nil {
		return nil, fmt.Errorf("charon: vici %s: %w", cmd, err)
	}
	p, err := c.reply()
	if err != nil {
		return nil, err
	}
	if p.typ != pktCmdResponse {
		return nil, fmt.Errorf("charon: vici %s: unknown command (packet type %d)", cmd, p.typ)
	}
	return ParseMessage(p.msg)
}

// Listen registers for an event; f sees each one, on the reader goroutine,
// so it must not call the client.
func (c *Client) Listen(event string, f func(*Message)) error {
	c.mu.Lock()
	c.handlers[event] = f
	c.mu.Unlock()
	c.cmd.Lock()
	defer c.cmd.Unlock()
	if err := c.send(pktEventRegister, event, nil); err != nil {
		return fmt.Errorf("charon: vici register %s: %w", event, err)
	}
	p, err := c.reply()
	if err != nil {
		return err
	}
	if p.typ != pktEventConfirm {
		return fmt.Errorf("charon: vici register %s: refused (packet type %d)", event, p.typ)
	}
	return nil
}

// ErrFailed is wrapped by Check's error for a response with success = no.
var ErrFailed = errors.New("charon: vici command failed")

// Check turns a response's success and errmsg keys into an error.
func Check(m *Message, err error) error {
	if err != nil {
		return err
	}
	if m.Keys["success"] != "yes" {
		return fmt.Errorf("%w: %s", ErrFailed, m.Keys["errmsg"])
	}
	return nil
}
