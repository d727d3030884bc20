//go:build !noasm

package tensor

import (
	"reflect"
	"testing"
)

// TestExpfsDispatch checks that Expfs takes the AVX-512 body on AVX-512F,
// so that TestExpfsMatchesExpf covers it there (and the AVX2 one in AVX2
// mode).
func TestExpfsDispatch(t *testing.T) {
	defer expectAVX512(t)()
	if !hasAVX512 {
		t.Skip("no AVX-512F")
	}
	if reflect.ValueOf(expfsVec).Pointer() != reflect.ValueOf(expfsAsm512).Pointer() {
		t.Fatal("Expfs does not dispatch to expfsAsm512")
	}
}
