package server

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3 description of every route Handler
// serves; TestOpenAPIConformance holds it to the handlers.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 document (YAML) of the inbound API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func handleOpenAPI(w http.ResponseWriter, _ *http.Request, _ *reqState) {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument)
}
