/** The record this tool leaves in the rootfs: which version and steps produced the image. */
export const BUILD_STAMP_PATH = '/etc/odroid-buildx-image.json';
