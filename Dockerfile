# One image for every cardwarden process: worker, serve, issuer-sim, migrate.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/cardwarden ./cmd/cardwarden

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl tzdata \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 cardwarden
COPY --from=build /out/cardwarden /usr/local/bin/cardwarden
USER cardwarden
ENTRYPOINT ["cardwarden"]
CMD ["--help"]
