// Package connect implements the small subset of the Connect RPC protocol the
// agent speaks: the JSON codec over HTTP/1.1, unary calls and server streams.
// We implement it by hand because the agent must build with the standard
// library only.
package connect

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"syscall"
)

// Code is a Connect error code, serialised as its lower-case name.
type Code string

// The Connect error codes (the same set as gRPC's, snake_case).
const (
	Canceled           Code = "canceled"
	Unknown            Code = "unknown"
	InvalidArgument    Code = "invalid_argument"
	DeadlineExceeded   Code = "deadline_exceeded"
	NotFound           Code = "not_found"
	AlreadyExists      Code = "already_exists"
	PermissionDenied   Code = "permission_denied"
	ResourceExhausted  Code = "resource_exhausted"
	FailedPrecondition Code = "failed_precondition"
	Aborted            Code = "aborted"
	OutOfRange         Code = "out_of_range"
	Unimplemented      Code = "unimplemented"
	Internal           Code = "internal"
	Unavailable        Code = "unavailable"
	DataLoss           Code = "data_loss"
	Unauthenticated    Code = "unauthenticated"
)

// HTTPStatus maps a code to the HTTP status of a unary error response, as
// specified by the table in the Connect protocol reference.
func HTTPStatus(c Code) int {
	switch c {
	case Canceled:
		return 499
	case InvalidArgument, FailedPrecondition, OutOfRange:
		return http.StatusBadRequest
	case DeadlineExceeded:
		return http.StatusGatewayTimeout
	case NotFound:
		return http.StatusNotFound
	case AlreadyExists, Aborted:
		return http.StatusConflict
	case PermissionDenied:
		return http.StatusForbidden
	case ResourceExhausted:
		return http.StatusTooManyRequests
	case Unimplemented:
		return http.StatusNotImplemented
	case Unavailable:
		return http.StatusServiceUnavailable
	case Unauthenticated:
		return http.StatusUnauthorized
	default: // unknown, internal, data_loss and anything unexpected
		return http.StatusInternalServerError
	}
}

// Error is an RPC error as it goes on the wire.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...interface{}) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError converts any error into an *Error. Errors that already carry a code
// keep it; operating-system errors are mapped by errno so that handlers can
// simply return what os.* gave them; anything else becomes internal.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	return &Error{Code: CodeForErrno(err), Message: err.Error()}
}

// CodeForErrno picks the Connect code that best describes a failed system call.
func CodeForErrno(err error) Code {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return NotFound
		case errors.Is(err, fs.ErrExist):
			return AlreadyExists
		case errors.Is(err, fs.ErrPermission):
			return PermissionDenied
		}
		return Internal
	}
	switch errno {
	case syscall.ENOENT:
		return NotFound
	case syscall.EEXIST, syscall.ENOTEMPTY:
		return AlreadyExists
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return PermissionDenied
	case syscall.ENOTDIR, syscall.EISDIR, syscall.EINVAL, syscall.ENAMETOOLONG, syscall.ELOOP:
		return InvalidArgument
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EMFILE, syscall.ENFILE:
		return ResourceExhausted
	case syscall.EXDEV, syscall.EBUSY:
		return FailedPrecondition
	}
	return Internal
}
