import java.sql.*;
import java.util.*;

// Run by tests/it/sql_clients.rs: `java -cp postgresql.jar Jdbc.java <port> [db] [password]`;
// prints what JDBC's metadata calls and a prepared statement answer, as JSON.
public class Jdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + (args.length > 1 ? args[1] : "shop");
        Properties p = new Properties();
        p.setProperty("user", "bi");
        p.setProperty("password", args.length > 2 ? args[2] : "tok-shop");
        StringBuilder out = new StringBuilder("{");
        try (Connection c = DriverManager.getConnection(url, p)) {
            DatabaseMetaData md = c.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            Collections.sort(tables);
            out.append("\"tables\":").append(json(tables));
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "identities", "%")) {
                while (rs.next()) columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
            out.append(",\"columns\":").append(json(columns));
            List<String> keys = new ArrayList<>();
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "profiles")) {
                while (rs.next()) keys.add(rs.getString("COLUMN_NAME"));
            }
            out.append(",\"primary_keys\":").append(json(keys));
            try (PreparedStatement s = c.prepareStatement(
                    "select id_type from identities where id_value = ? order by 1")) {
                s.setString(1, "ada@example.com");
                List<String> ids = new ArrayList<>();
                try (ResultSet rs = s.executeQuery()) {
                    while (rs.next()) ids.add(rs.getString(1));
                }
                out.append(",\"ids\":").append(json(ids));
            }
        }
        System.out.println(out.append("}"));
    }

    static String json(List<String> items) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < items.size(); i++) {
            if (i > 0) b.append(",");
            b.append('"').append(items.get(i).replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
        }
        return b.append("]").toString();
    }
}
