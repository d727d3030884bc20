package gguf

import (
	"fmt"
	"math"
)

// ValueType is a GGUF metadata value type.
type ValueType uint32

// GGUF metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	ValueUint8:   "uint8",
	ValueInt8:    "int8",
	ValueUint16:  "uint16",
	ValueInt16:   "int16",
	ValueUint32:  "uint32",
	ValueInt32:   "int32",
	ValueFloat32: "float32",
	ValueBool:    "bool",
	ValueString:  "string",
	ValueArray:   "array",
	ValueUint64:  "uint64",
	ValueInt64:   "int64",
	ValueFloat64: "float64",
}

// Known reports whether t is one of the thirteen GGUF value types.
func (t ValueType) Known() bool { return t <= ValueFloat64 }

// String returns the GGUF name of the type ("uint32", "array", ...), or
// "valuetype(N)" for an unknown one.
func (t ValueType) String() string {
	if t.Known() {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// size returns the encoded size of a fixed-width scalar, or 0 for string and
// array, whose size depends on their contents.
func (t ValueType) size() int {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// minSize is the fewest bytes one encoded element of type t can take: a
// string is at least its 8-byte length, a nested array at least its 4-byte
// element type and 8-byte count. The reader divides the bytes left by it to
// reject counts that cannot fit before it allocates anything.
func (t ValueType) minSize() int {
	switch t {
	case ValueString:
		return 8
	case ValueArray:
		return 12
	}
	return t.size()
}

// Value is one metadata value. Scalars are held as the Go type of the same
// width (uint8, int8, ..., float64, bool, string). Arrays are held as typed
// slices ([]uint8 ... []float64, []bool, []string) and nested arrays as
// []Value; Elem then names the element type.
type Value struct {
	Type ValueType
	Elem ValueType // element type when Type == ValueArray
	V    any
}

// KV is one metadata entry, in file order.
type KV struct {
	Key   string
	Value Value
}

// Len returns the number of elements of an array value, or 0 for a scalar.
func (v Value) Len() int {
	if v.Type != ValueArray {
		return 0
	}
	switch s := v.V.(type) {
	case []uint8:
		return len(s)
	case []int8:
		return len(s)
	case []uint16:
		return len(s)
	case []int16:
		return len(s)
	case []uint32:
		return len(s)
	case []int32:
		return len(s)
	case []float32:
		return len(s)
	case []bool:
		return len(s)
	case []string:
		return len(s)
	case []uint64:
		return len(s)
	case []int64:
		return len(s)
	case []float64:
		return len(s)
	case []Value:
		return len(s)
	}
	return 0
}

// maxDepth bounds how deeply arrays may nest, in files and in the writer, so
// that a hostile file cannot drive the decoder into deep recursion. Real files
// never nest at all.
const maxDepth = 8

// ValueOf converts a Go value of a GGUF type to a Value: uint8 ... float64,
// bool and string become scalars; []uint8 ... []float64, []bool and []string
// become arrays; []Value becomes an array of arrays (every element must be an
// array Value); a Value is checked and returned as is. Go's int, uint and
// other types have no GGUF type and give an error.
func ValueOf(x any) (Value, error) {
	var v Value
	switch x := x.(type) {
	case Value:
		v = x
	case uint8:
		v = Value{Type: ValueUint8, V: x}
	case int8:
		v = Value{Type: ValueInt8, V: x}
	case uint16:
		v = Value{Type: ValueUint16, V: x}
	case int16:
		v = Value{Type: ValueInt16, V: x}
	case uint32:
		v = Value{Type: ValueUint32, V: x}
	case int32:
		v = Value{Type: ValueInt32, V: x}
	case float32:
		v = Value{Type: ValueFloat32, V: x}
	case bool:
		v = Value{Type: ValueBool, V: x}
	case string:
		v = Value{Type: ValueString, V: x}
	case uint64:
		v = Value{Type: ValueUint64, V: x}
	case int64:
		v = Value{Type: ValueInt64, V: x}
	case float64:
		v = Value{Type: ValueFloat64, V: x}
	default:
		elem, ok := sliceElem(x)
		if !ok {
			return Value{}, fmt.Errorf("gguf: Go type %T has no GGUF value type", x)
		}
		v = Value{Type: ValueArray, Elem: elem, V: x}
	}
	if err := v.check(0); err != nil {
		return Value{}, err
	}
	return v, nil
}

// sliceElem returns the GGUF element type of a typed slice.
func sliceElem(x any) (ValueType, bool) {
	switch x.(type) {
	case []uint8:
		return ValueUint8, true
	case []int8:
		return ValueInt8, true
	case []uint16:
		return ValueUint16, true
	case []int16:
		return ValueInt16, true
	case []uint32:
		return ValueUint32, true
	case []int32:
		return ValueInt32, true
	case []float32:
		return ValueFloat32, true
	case []bool:
		return ValueBool, true
	case []string:
		return ValueString, true
	case []uint64:
		return ValueUint64, true
	case []int64:
		return ValueInt64, true
	case []float64:
		return ValueFloat64, true
	case []Value:
		return ValueArray, true
	}
	return 0, false
}

// scalarType returns the GGUF type of a Go scalar.
func scalarType(x any) (ValueType, bool) {
	switch x.(type) {
	case uint8:
		return ValueUint8, true
	case int8:
		return ValueInt8, true
	case uint16:
		return ValueUint16, true
	case int16:
		return ValueInt16, true
	case uint32:
		return ValueUint32, true
	case int32:
		return ValueInt32, true
	case float32:
		return ValueFloat32, true
	case bool:
		return ValueBool, true
	case string:
		return ValueString, true
	case uint64:
		return ValueUint64, true
	case int64:
		return ValueInt64, true
	case float64:
		return ValueFloat64, true
	}
	return 0, false
}

// check reports whether v's Go value matches its declared types.
func (v Value) check(depth int) error {
	if v.Type != ValueArray {
		t, ok := scalarType(v.V)
		if !ok || t != v.Type {
			return fmt.Errorf("gguf: value of type %s holds Go %T", v.Type, v.V)
		}
		return nil
	}
	if depth >= maxDepth {
		return fmt.Errorf("gguf: arrays nested more than %d deep", maxDepth)
	}
	elem, ok := sliceElem(v.V)
	if !ok || elem != v.Elem {
		return fmt.Errorf("gguf: array of %s holds Go %T", v.Elem, v.V)
	}
	if inner, ok := v.V.([]Value); ok {
		for i, e := range inner {
			if e.Type != ValueArray {
				return fmt.Errorf("gguf: element %d of an array of arrays is a %s", i, e.Type)
			}
			if err := e.check(depth + 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// asUint converts an integer scalar to uint64, refusing negative values.
func (v Value) asUint() (uint64, bool) {
	switch x := v.V.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	if i, ok := v.asSigned(); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

// asInt converts an integer scalar to int64, refusing a uint64 above MaxInt64.
func (v Value) asInt() (int64, bool) {
	if i, ok := v.asSigned(); ok {
		return i, true
	}
	if u, ok := v.asUint(); ok && u <= math.MaxInt64 {
		return int64(u), true
	}
	return 0, false
}

func (v Value) asSigned() (int64, bool) {
	switch x := v.V.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}
