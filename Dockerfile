# virtfence image: fence_virtd, fence_xvm, fence_virt and the native libvirt binding.
#   docker build -t virtfence .
FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvirt-dev libcpg-dev python3 make g++ pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/virtfence
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json binding.gyp ./
COPY native ./native
COPY src ./src
COPY bin ./bin
# node-gyp uses the headers of the image's Node instead of downloading them.
ENV npm_config_nodedir=/usr/local
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# libvirt0: the client library (its test:/// driver runs in-process; qemu:///system needs the
# host's libvirtd socket mounted in). libcpg4: the cpg backend's corosync client library.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvirt0 libcpg4 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/virtfence
COPY --from=build /opt/virtfence/package.json ./
COPY --from=build /opt/virtfence/node_modules ./node_modules
COPY --from=build /opt/virtfence/dist ./dist
COPY --from=build /opt/virtfence/build/Release/virtfence_libvirt.node /opt/virtfence/build/Release/virtfence_cpg.node /opt/virtfence/build/Release/virtfence_vsock.node ./build/Release/
COPY --from=build /opt/virtfence/bin ./bin
ENV PATH=/opt/virtfence/bin:$PATH NODE_ENV=production
EXPOSE 1229/udp 1229/tcp
CMD ["bin/fence_virtd", "-F", "-f", "/etc/fence_virt.conf"]
