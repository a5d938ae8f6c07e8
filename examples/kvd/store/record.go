package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Limits of one record. They bound every allocation recovery makes.
const (
	// MaxKeySize is the longest key, in bytes.
	MaxKeySize = 4 << 10
	// MaxValueSize is the longest value, in bytes.
	MaxValueSize = 16 << 20
)

// kind is the op byte of a record.
type kind uint8

const (
	kindPut    kind = 1
	kindFooter kind = 2
)

const (
	headerSize  = 25 // length, crc, revision, op, key length, value length
	crcStart    = 8  // the CRC covers everything from here on
	bodyFixed   = headerSize - crcStart
	footerMagic = "KVDSEAL1"
	footerValue = len(footerMagic) + 8 + 8 + 32
	footerSize  = headerSize + footerValue
	maxFrame    = headerSize + MaxKeySize + MaxValueSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Reasons a frame is rejected. They never leave the package: recovery turns
// them into a torn tail or a [CorruptError].
var (
	errShortFrame = errors.New("incomplete record")
	errBadHeader  = errors.New("malformed record header")
	errBadCRC     = errors.New("CRC mismatch")
)

// record is one decoded log record. key and value alias the frame buffer.
type record struct {
	rev   uint64
	kind  kind
	key   []byte
	value []byte
}

// appendRecord encodes one record onto buf.
func appendRecord(buf []byte, rev uint64, k kind, key string, value []byte) []byte {
	start := len(buf)
	body := bodyFixed + len(key) + len(value)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(body))
	buf = binary.LittleEndian.AppendUint32(buf, 0) // CRC, filled in below
	buf = binary.LittleEndian.AppendUint64(buf, rev)
	buf = append(buf, byte(k))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(key)))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(value)))
	buf = append(buf, key...)
	buf = append(buf, value...)
	sum := crc32.Checksum(buf[start+crcStart:], castagnoli)
	binary.LittleEndian.PutUint32(buf[start+4:], sum)
	return buf
}

// frameLen checks the header h (headerSize bytes) for structural sanity and
// returns the size of the whole record. The checks (known op, sizes within
// limits, length consistent with them) make random bytes fail here almost
// always, long before a CRC is computed.
func frameLen(h []byte) (int, error) {
	body := binary.LittleEndian.Uint32(h[0:4])
	k := kind(h[16])
	klen := binary.LittleEndian.Uint32(h[17:21])
	vlen := binary.LittleEndian.Uint32(h[21:25])
	switch {
	case k == kindPut && (klen == 0 || klen > MaxKeySize || vlen > MaxValueSize):
		return 0, errBadHeader
	case k == kindFooter && (klen != 0 || vlen != uint32(footerValue)):
		return 0, errBadHeader
	case k != kindPut && k != kindFooter:
		return 0, errBadHeader
	case uint64(body) != uint64(bodyFixed)+uint64(klen)+uint64(vlen):
		return 0, errBadHeader
	}
	return crcStart + int(body), nil
}

// decodeFrame checks the CRC of a complete frame and splits it.
func decodeFrame(frame []byte) (record, error) {
	want := binary.LittleEndian.Uint32(frame[4:8])
	if crc32.Checksum(frame[crcStart:], castagnoli) != want {
		return record{}, errBadCRC
	}
	klen := binary.LittleEndian.Uint32(frame[17:21])
	return record{
		rev:   binary.LittleEndian.Uint64(frame[8:16]),
		kind:  kind(frame[16]),
		key:   frame[headerSize : headerSize+klen],
		value: frame[headerSize+klen:],
	}, nil
}

// footer is the payload of a footer record.
type footer struct {
	lastRev     uint64
	records     uint64
	fingerprint [32]byte
}

func (f footer) encode() []byte {
	b := make([]byte, 0, footerValue)
	b = append(b, footerMagic...)
	b = binary.LittleEndian.AppendUint64(b, f.lastRev)
	b = binary.LittleEndian.AppendUint64(b, f.records)
	return append(b, f.fingerprint[:]...)
}

// decodeFooter parses a footer value; frameLen already checked its size.
func decodeFooter(v []byte) (footer, error) {
	if !bytes.Equal(v[:len(footerMagic)], []byte(footerMagic)) {
		return footer{}, fmt.Errorf("footer magic %q, want %q", v[:len(footerMagic)], footerMagic)
	}
	v = v[len(footerMagic):]
	f := footer{
		lastRev: binary.LittleEndian.Uint64(v[0:8]),
		records: binary.LittleEndian.Uint64(v[8:16]),
	}
	copy(f.fingerprint[:], v[16:])
	return f, nil
}
