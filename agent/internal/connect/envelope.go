package connect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Envelope flag bits (Connect streaming framing).
const (
	FlagCompressed byte = 0x01
	FlagEndStream  byte = 0x02
)

// envelopeHeaderLen is one flag byte plus a 4-byte big-endian length.
const envelopeHeaderLen = 5

// ErrEnvelopeTooLarge is returned when a peer announces a message bigger than
// the caller's limit; we refuse before allocating anything.
var ErrEnvelopeTooLarge = errors.New("envelope exceeds size limit")

// AppendEnvelope appends one framed message to dst. Building the whole frame
// in memory lets the stream writer emit it with a single Write call.
func AppendEnvelope(dst []byte, flags byte, msg []byte) []byte {
	var hdr [envelopeHeaderLen]byte
	hdr[0] = flags
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(msg)))
	dst = append(dst, hdr[:]...)
	return append(dst, msg...)
}

// ReadEnvelope reads one framed message. max bounds the payload size.
// io.EOF is returned only when the stream ends cleanly before a header.
func ReadEnvelope(r io.Reader, max int) (flags byte, msg []byte, err error) {
	var hdr [envelopeHeaderLen]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("truncated envelope header")
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(max) {
		return 0, nil, ErrEnvelopeTooLarge
	}
	msg = make([]byte, n)
	if _, err = io.ReadFull(r, msg); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("truncated envelope body")
		}
		return 0, nil, err
	}
	return hdr[0], msg, nil
}
