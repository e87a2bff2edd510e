package users

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"hutch/agent/internal/connect"
)

// ErrBadAuthorization is returned for an Authorization: Basic header that does
// not decode.
var ErrBadAuthorization = errors.New("malformed Authorization header")

// UnknownUserError names the user that was asked for.
type UnknownUserError struct{ Name string }

func (e *UnknownUserError) Error() string { return fmt.Sprintf("unknown user %q", e.Name) }

// Unwrap lets errors.Is(err, ErrUnknownUser) match.
func (e *UnknownUserError) Unwrap() error { return ErrUnknownUser }

// Resolver picks the sandbox user a request runs as.
type Resolver struct {
	DB      DB
	Default string // --default-user
}

// Resolve returns the user for req. explicit (e.g. the ?username= query of
// /files) wins; then the envd-style header Authorization: Basic
// base64("<user>:"); then the default user, which itself falls back to root
// when the image has no such account.
func (res Resolver) Resolve(req *http.Request, explicit string) (*User, error) {
	name := explicit
	if name == "" {
		var err error
		if name, err = BasicUser(req.Header.Get("Authorization")); err != nil {
			return nil, err
		}
	}
	if name == "" {
		return res.DefaultUser()
	}
	u, err := res.DB.Lookup(name)
	if errors.Is(err, ErrUnknownUser) {
		return nil, &UnknownUserError{Name: name}
	}
	return u, err
}

// DefaultUser returns the configured default user, or root if that account
// does not exist in this image.
func (res Resolver) DefaultUser() (*User, error) {
	if res.Default != "" {
		u, err := res.DB.Lookup(res.Default)
		if err == nil || !errors.Is(err, ErrUnknownUser) {
			return u, err
		}
	}
	return res.DB.Lookup("root")
}

// BasicUser extracts the user name from an Authorization header. Schemes other
// than Basic are ignored (they are not meant for the agent), so the result is
// "" with no error for them and for an absent header.
func BasicUser(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", nil
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", ErrBadAuthorization
	}
	name, _, _ := strings.Cut(string(raw), ":")
	return name, nil
}

// RPCError maps a Resolve error to the Connect error the protocol expects:
// an unknown user is invalid_argument, a garbled header unauthenticated.
func RPCError(err error) error {
	var ue *UnknownUserError
	switch {
	case errors.As(err, &ue):
		return connect.Errorf(connect.InvalidArgument, "%s", ue.Error())
	case errors.Is(err, ErrBadAuthorization):
		return connect.Errorf(connect.Unauthenticated, "%v", err)
	}
	return connect.Errorf(connect.Internal, "resolve user: %v", err)
}
