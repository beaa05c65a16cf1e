package metal

// What the external tests (the emulation's, which share internal/loomtest
// with the op tests, and loomtest imports this package) use of the
// package's insides.
var (
	LibrarySource = librarySource
	StatusError   = statusError
	NeedCompiler  = needCompiler
)

const (
	StatusIndex = statusIndex
	StatusWords = statusWords
)
