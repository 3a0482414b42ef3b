# One image for both roles: the ingest by default, `command: ["worker"]` for a worker.
# CI builds it with a real Docker engine and runs the README's compose recipe against it
# (`npm run test:docker`). No `# syntax=` line: it builds offline once its base image is present.

# A maintained Node LTS line, pinned to the exact release CI builds and tests on.
ARG NODE_VERSION=24.21.0

# Compile TypeScript with the dev dependencies. `--ignore-scripts`: the package's `prepare` (which
# builds it for installs from a git URL) would run before the sources are copied; the build is
# the explicit step below. No dependency needs an install script (msgpackr's native part is an
# optional prebuilt package, with a JavaScript fallback).
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN ["npm", "run", "build"]

# Production dependencies only, installed apart so that no dev dependency reaches the image.
FROM node:${NODE_VERSION}-bookworm-slim AS production-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN ["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"]
# TypeScript is a devDependency and also an optional peer of valibot (through bull-board), so
# `--omit=dev` keeps it; nothing needs it at run time.
RUN ["rm", "-rf", "node_modules/typescript"]

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=production-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The example processor, so that INLET_PROCESSORS=./examples/save-outputs.js works in the image.
# Mount your own processors, e.g. at /app/processors, and point INLET_PROCESSORS there.
COPY examples ./examples
# Where the keep-outputs processor stores files in compose (a named volume, which takes this
# folder's owner the first time it is mounted, so that the `node` user can write to it).
RUN ["install", "-d", "-o", "node", "-g", "node", "/data/outputs"]
# The image's own user, not root; it owns nothing in /app, so the code cannot be rewritten.
USER node
EXPOSE 3000
# Both roles stop gracefully on SIGTERM: the ingest answers what is in flight, a worker lets
# running processors finish (INLET_SHUTDOWN_GRACE_MS) and hands the rest back to the queue.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["ingest"]
