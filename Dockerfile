# syntax=docker/dockerfile:1
# One image for both roles: the ingest by default, `command: ["worker"]` for a worker.
# CI runs the build and start commands below outside containers (test/docker/image.test.ts reads
# them from this file), so the recipe cannot rot unseen: keep RUN, ENTRYPOINT and CMD in
# exec form and keep the build to `npm ci` and `npm run build`.

ARG NODE_VERSION=20

# Compile TypeScript with the dev dependencies.
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN ["npm", "ci", "--no-audit", "--no-fund"]
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN ["npm", "run", "build"]

# Production dependencies only, installed apart so that no dev dependency reaches the image.
FROM node:${NODE_VERSION}-bookworm-slim AS production-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN ["npm", "ci", "--omit=dev", "--no-audit", "--no-fund"]

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=production-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The example processor, so that INLET_PROCESSORS=./examples/save-outputs.js works in the image.
# Mount your own processors, e.g. at /app/processors, and point INLET_PROCESSORS there.
COPY examples ./examples
# The image's own user, not root; it owns nothing in /app, so the code cannot be rewritten.
USER node
EXPOSE 3000
# Both roles stop gracefully on SIGTERM: the ingest answers what is in flight, a worker lets
# running processors finish (INLET_SHUTDOWN_GRACE_MS) and hands the rest back to the queue.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["ingest"]
