package activities

// IssuerError exposes the error mapping to the tests.
var IssuerError = issuerError
