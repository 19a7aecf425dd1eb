package dev.mtlsproxy.app;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The few command-line options there are: {@code --config FILE} (or the file alone), {@code --admin ADDR},
 * {@code --cert FILE}, {@code --sni HOST}, {@code --check} (demo), and plain arguments after them
 * ({@code explain}'s METHOD URL).
 */
record Options(Path config, String admin, Path cert, String sni, boolean check, List<String> arguments) {

    static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    static Options parse(String[] args) throws UsageException {
        Path config = null;
        String admin = null;
        Path cert = null;
        String sni = null;
        boolean check = false;
        List<String> arguments = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--check")) {
                check = true;
            } else if (a.equals("--cert")) {
                if (i + 1 >= args.length) {
                    throw new UsageException("--cert needs a PEM file");
                }
                cert = Path.of(args[++i]);
            } else if (a.equals("--sni")) {
                if (i + 1 >= args.length) {
                    throw new UsageException("--sni needs a host name");
                }
                sni = args[++i];
            } else if (a.equals("--admin")) {
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
            } else if (!a.startsWith("-")) {
                arguments.add(a);
            } else {
                throw new UsageException("unknown option: " + a);
            }
        }
        return new Options(config, admin, cert, sni, check, List.copyOf(arguments));
    }

    Path requireConfig() throws UsageException {
        if (config == null) {
            throw new UsageException("missing --config FILE");
        }
        return config;
    }

    Path requireCert() throws UsageException {
        if (cert == null) {
            throw new UsageException("missing --cert CLIENT.pem");
        }
        return cert;
    }

    List<String> requireArguments(String what, int count) throws UsageException {
        if (arguments.size() != count) {
            throw new UsageException("expected " + what + ", got " + (arguments.isEmpty() ? "nothing"
                    : String.join(" ", arguments)));
        }
        return arguments;
    }

    String adminOr(String fallback) {
        return admin == null ? fallback : admin;
    }

    Path configOr(String fallback) {
        return config == null ? Path.of(fallback) : config;
    }
}
