# levee sidecar image.
#   docker build -t levee .
#   docker run --rm -p 15006:15006 -p 15021:15021 levee
# Mount your own policy over /etc/levee/policy.yaml (or pass `run --config FILE`).
# Packages come from scripts/install-deps.sh in both stages, so the image and a developer
# machine install the same Debian 12 packages.

# ---- build stage -------------------------------------------------------------------------
FROM debian:12-slim AS build
WORKDIR /src
# Copied alone first so the package layer stays cached while the sources change.
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEVEE_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target levee \
 && mkdir -p /out \
 && strip --strip-debug -o /out/levee build/levee \
 && /out/levee version

# ---- runtime stage -----------------------------------------------------------------------
FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && groupadd --system --gid 1337 levee \
 && useradd --system --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin levee
COPY --from=build /out/levee /usr/local/bin/levee
# Fail the build if the binary needs a shared library that --runtime did not install.
RUN ! ldd /usr/local/bin/levee | grep -q 'not found' && /usr/local/bin/levee version
COPY config/examples/quickstart.yaml /etc/levee/policy.yaml
# quickstart.yaml binds loopback, which `docker run -p` cannot reach: the data listener and the
# probes bind all interfaces in the image. The admin API stays on loopback (use `docker exec`).
RUN sed -i -e 's/127\.0\.0\.1:15006/0.0.0.0:15006/' -e 's/127\.0\.0\.1:15021/0.0.0.0:15021/' \
      /etc/levee/policy.yaml \
 && /usr/local/bin/levee validate /etc/levee/policy.yaml
USER 1337:1337
EXPOSE 15006 15021 15000
ENTRYPOINT ["/usr/local/bin/levee"]
CMD ["run", "--config", "/etc/levee/policy.yaml"]
