package operator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Request is one ismctl command on the control socket.
type Request struct {
	Command string `json:"command"`
}

// Response is the answer: the text a router would print, the data behind
// it (for ismctl -json), or an error.
type Response struct {
	Text  string          `json:"text,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error string          `json:"error,omitempty"`
}

// ServeControl serves ismctl on a unix socket at path, readable and writable
// by root only, until ctx ends. reload is what the "reload" command runs.
func ServeControl(ctx context.Context, path string, g Gateway, reload func() error, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("operator: control socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("operator: control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("operator: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("operator: control socket: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil {
					log.Error("control socket", "err", err)
				}
				os.Remove(path)
				return
			}
			go serveOne(c, g, reload, log)
		}
	}()
	return nil
}

func serveOne(c net.Conn, g Gateway, reload func() error, log *slog.Logger) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var req Request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	var resp Response
	cmd := strings.Join(strings.Fields(req.Command), " ")
	if cmd == "reload" {
		log.Info("reload requested over the control socket")
		if err := reload(); err != nil {
			resp.Error = err.Error()
		} else {
			resp.Text = "configuration reloaded\n"
		}
	} else if text, data, ok, err := command(g, cmd); ok {
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.Text = text
			resp.Data, _ = json.Marshal(data)
		}
	} else {
		text, data, err := Exec(g, cmd)
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.Text = text
			resp.Data, _ = json.Marshal(data)
		}
	}
	json.NewEncoder(c).Encode(resp)
}

// Commander is a Gateway with commands of its own beyond Exec's (ismd's
// cluster commands: show cluster, cluster drain).
type Commander interface {
	// Command runs cmd; handled is false for a command it does not
	// know, which then goes to Exec.
	Command(cmd string) (text string, data any, handled bool, err error)
}

// command runs cmd through g's Commander, if it has one.
func command(g Gateway, cmd string) (string, any, bool, error) {
	if c, ok := g.(Commander); ok {
		return c.Command(cmd)
	}
	return "", nil, false, nil
}

// Call sends one command to the control socket at path and returns the
// answer; ismctl uses it.
func Call(path, command string) (Response, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return Response{}, fmt.Errorf("cannot reach ismd at %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := json.NewEncoder(c).Encode(Request{Command: command}); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("reading ismd's answer: %w", err)
	}
	return resp, nil
}
