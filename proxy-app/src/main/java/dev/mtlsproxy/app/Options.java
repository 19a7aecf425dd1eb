package dev.mtlsproxy.app;

import java.nio.file.Path;

/** The few command-line options there are: {@code --config FILE} (or the file alone), {@code --admin ADDR}. */
record Options(Path config, String admin) {

    static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    static Options parse(String[] args) throws UsageException {
        Path config = null;
        String admin = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--admin")) {
                if (i + 1 >= args.length) {
                    throw new UsageException("--admin needs host:port");
                }
                admin = args[++i];
            } else if (a.equals("--config") || a.equals("-c")) {
                if (i + 1 >= args.length) {
                    throw new UsageException("--config needs a file");
                }
                config = Path.of(args[++i]);
            } else if (a.startsWith("--config=")) {
                config = Path.of(a.substring("--config=".length()));
            } else if (!a.startsWith("-") && config == null) {
                config = Path.of(a);
            } else {
                throw new UsageException("unknown option: " + a);
            }
        }
        return new Options(config, admin);
    }

    Path requireConfig() throws UsageException {
        if (config == null) {
            throw new UsageException("missing --config FILE");
        }
        return config;
    }

    String adminOr(String fallback) {
        return admin == null ? fallback : admin;
    }

    Path configOr(String fallback) {
        return config == null ? Path.of(fallback) : config;
    }
}
