package process

import (
	"encoding/json"
	"fmt"
	"strings"

	"hutch/agent/internal/connect"
)

// Wire messages of the process.Process service (proto3 JSON mapping). Only
// fields that exist in the protocol are ever emitted: strict proto-JSON
// clients reject unknown fields.

// ProcessConfig describes what was started.
type ProcessConfig struct {
	Cmd  string            `json:"cmd"`
	Args []string          `json:"args"`
	Envs map[string]string `json:"envs"`
	Cwd  *string           `json:"cwd,omitempty"`
}

// PTYSize is a terminal size in character cells.
type PTYSize struct {
	Cols connect.Uint32 `json:"cols"`
	Rows connect.Uint32 `json:"rows"`
}

// PTY asks for a pseudo-terminal of the given size.
type PTY struct {
	Size *PTYSize `json:"size"`
}

// Selector picks a process by pid or by tag (a proto oneof).
type Selector struct {
	Pid *connect.Uint32 `json:"pid,omitempty"`
	Tag *string         `json:"tag,omitempty"`
}

func (s *Selector) String() string {
	switch {
	case s == nil:
		return "<none>"
	case s.Pid != nil:
		return fmt.Sprintf("pid %d", *s.Pid)
	case s.Tag != nil:
		return fmt.Sprintf("tag %q", *s.Tag)
	}
	return "<none>"
}

type StartRequest struct {
	Process *ProcessConfig `json:"process"`
	PTY     *PTY           `json:"pty"`
	Tag     *string        `json:"tag"`
	Stdin   *bool          `json:"stdin"`
}

type ConnectRequest struct {
	Process *Selector `json:"process"`
}

type ListRequest struct{}

type ProcessInfo struct {
	Config ProcessConfig `json:"config"`
	Pid    uint32        `json:"pid"`
	Tag    *string       `json:"tag,omitempty"`
}

type ListResponse struct {
	Processes []ProcessInfo `json:"processes"`
}

// ProcessInput is a oneof: stdin bytes or pty bytes (base64 in JSON).
type ProcessInput struct {
	Stdin []byte `json:"stdin,omitempty"`
	Pty   []byte `json:"pty,omitempty"`
}

type SendInputRequest struct {
	Process *Selector     `json:"process"`
	Input   *ProcessInput `json:"input"`
}

type SendSignalRequest struct {
	Process *Selector `json:"process"`
	Signal  Signal    `json:"signal"`
}

type CloseStdinRequest struct {
	Process *Selector `json:"process"`
}

type UpdateRequest struct {
	Process *Selector `json:"process"`
	PTY     *PTY      `json:"pty"`
}

// Empty is the response of the unary calls that return nothing.
type Empty struct{}

// Event is one ProcessEvent (a oneof: exactly one field set).
type Event struct {
	Start     *StartEvent `json:"start,omitempty"`
	Data      *DataEvent  `json:"data,omitempty"`
	End       *EndEvent   `json:"end,omitempty"`
	Keepalive *struct{}   `json:"keepalive,omitempty"`
}

type StartEvent struct {
	Pid uint32 `json:"pid"`
}

// DataEvent carries one output chunk (a oneof of stdout, stderr, pty).
type DataEvent struct {
	Stdout []byte `json:"stdout,omitempty"`
	Stderr []byte `json:"stderr,omitempty"`
	Pty    []byte `json:"pty,omitempty"`
}

type EndEvent struct {
	ExitCode int32   `json:"exitCode"`
	Exited   bool    `json:"exited"`
	Status   string  `json:"status"`
	Error    *string `json:"error,omitempty"`
}

// EventMessage is both StartResponse and ConnectResponse.
type EventMessage struct {
	Event Event `json:"event"`
}

// keepaliveMessage is sent on Keepalive-Ping-Interval.
var keepaliveMessage = EventMessage{Event: Event{Keepalive: &struct{}{}}}

// Signal is the process.Signal enum. Proto JSON sends enums by name, but a
// number is equally valid, so both are accepted.
type Signal int

var signalNames = map[string]int{
	"SIGNAL_UNSPECIFIED": 0,
	"SIGNAL_SIGHUP":      1,
	"SIGNAL_SIGINT":      2,
	"SIGNAL_SIGKILL":     9,
	"SIGNAL_SIGTERM":     15,
}

func (s *Signal) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		n, ok := signalNames[strings.ToUpper(name)]
		if !ok {
			return fmt.Errorf("unknown signal %q", name)
		}
		*s = Signal(n)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("signal must be a name or a number")
	}
	*s = Signal(n)
	return nil
}
