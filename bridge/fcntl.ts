// fcntl(2) commands and descriptor flags, for the calls replay injects into a target (cr makes no
// fcntl call of its own on these: its pipe-size calls are in pipe.ts).
export const F_DUPFD = 0;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_SETFL = 4;
export const F_DUPFD_CLOEXEC = 1030;
export const FD_CLOEXEC = 1;
